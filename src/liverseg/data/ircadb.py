"""3D-IRCADb layout: ``PATIENT_DICOM`` + ``MASKS_DICOM`` (folders or zips) per patient.

``MASKS_DICOM`` holds one DICOM stack per structure (0/255), in a sub-folder named after the
structure. Names vary across patients, so they are classified (:func:`classify_structure`):

* ``liver``                                             -> liver (1)
* ``livertumor01``.., ``livertumors``, ``livertumor1``   -> liver tumor (2); its voxels are liver too
* ``liverkyst``, ``liverkyste``, ``livercyst``           -> cyst: liver (1), not tumor
* other masks with "tumor" (``tumor`` of patient 7, adrenal ``leftsurretumor``...) -> not a liver
  tumor, ignored
* every other structure (vessels, organs, bone...)       -> ignored

Liver label = liver mask ∪ liver tumors ∪ cysts; tumor label = ∪ liver tumors. The fraction of
each lesion mask inside the liver mask is recorded; a liver-tumor mask mostly outside the liver
gets a warning. Every mask must lie on the CT's grid (:class:`~liverseg.errors.GeometryError`).
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from liverseg.data.cases import LayoutOptions, LoadedCase, SourceCase, case_number, sanitize_id
from liverseg.errors import ConfigError, GeometryError, InputError
from liverseg.io import read_dicom_series
from liverseg.io.labels import LabelMap

__all__ = ["classify_structure", "discover_ircadb", "ircadb_case_id", "load_ircadb_patient"]

log = logging.getLogger(__name__)

LIVER, LIVER_TUMOR, LIVER_CYST, OTHER_TUMOR, LIVER_OTHER, OTHER = (
    "liver",
    "liver_tumor",
    "liver_cyst",
    "other_tumor",
    "liver_other",
    "other",
)
#: a liver-tumor mask with less than this fraction inside the liver mask gets a warning
MIN_INSIDE_FRACTION = 0.5
_ACTION = {
    LIVER: "liver (1)",
    LIVER_TUMOR: "tumor (2)",
    LIVER_CYST: "liver (1): cyst, not a tumor",
    OTHER_TUMOR: "ignored: tumor outside the liver, not a liver tumor",
    LIVER_OTHER: "ignored: unrecognised liver structure",
    OTHER: "ignored",
}


def classify_structure(name: str) -> str:
    """Classify a 3D-IRCADb mask folder name (case, digits and separators ignored).

    Returns one of ``"liver"``, ``"liver_tumor"``, ``"liver_cyst"``, ``"other_tumor"``,
    ``"liver_other"`` (a ``liver*`` name not understood) or ``"other"``.
    """
    n = re.sub(r"[^a-z]", "", name.lower())
    if n == "liver":
        return LIVER
    if re.fullmatch(r"liver(tumou?r|tumeur|lesion|metastas[ie]s?)s?", n):
        return LIVER_TUMOR
    if re.fullmatch(r"liver(kyste?|cyst)s?", n):
        return LIVER_CYST
    if re.search(r"tumou?r|tumeur|surretum", n):
        return OTHER_TUMOR
    if n.startswith("liver"):
        return LIVER_OTHER
    return OTHER


def ircadb_case_id(folder_name: str) -> str:
    """``3Dircadb1.7`` -> ``ircadb_07``; ``3Dircadb2.3`` -> ``ircadb2_03``; else from the name."""
    m = re.fullmatch(r"3d-?ircadb-?(\d)[._-](\d+)", folder_name.lower())
    if m:
        db, n = int(m.group(1)), int(m.group(2))
        return f"ircadb_{n:02d}" if db == 1 else f"ircadb{db}_{n:02d}"
    n = case_number(folder_name)
    return f"ircadb_{n:02d}" if n is not None else f"ircadb_{sanitize_id(folder_name)}"


def _member(folder: Path, name: str) -> Path | None:
    """``folder/name`` as a folder, or ``folder/name.zip``, whichever exists (folder first)."""
    for cand in (folder / name, folder / f"{name}.zip"):
        if cand.is_dir() or (cand.is_file() and cand.suffix.lower() == ".zip"):
            return cand
    return None


def _is_patient(folder: Path) -> bool:
    return _member(folder, "PATIENT_DICOM") is not None and _member(folder, "MASKS_DICOM") is not None


def _structures(masks: Path) -> dict[str, str]:
    """Structure name -> ``subfolder`` (for ``read_dicom_series``) inside a MASKS_DICOM folder/zip."""
    if masks.is_dir():
        rels = [p.relative_to(masks).as_posix() for p in masks.rglob("*") if p.is_file()]
    else:
        try:
            with zipfile.ZipFile(masks) as zf:
                rels = [i.filename for i in zf.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"cannot open the zip archive ({exc})", masks) from exc
    out: dict[str, str] = {}
    for rel in rels:
        parent = PurePosixPath(rel).parent
        if parent.name in ("", ".", "MASKS_DICOM") or parent.parts[0] == "__MACOSX":
            continue
        out.setdefault(parent.name, parent.as_posix())
    if not out:
        raise InputError(
            "expected one sub-folder of DICOM slices per structure (liver, livertumor01, ...), found none",
            masks,
        )
    return dict(sorted(out.items()))


def load_ircadb_patient(folder: Path) -> LoadedCase:
    """Read one 3D-IRCADb patient folder into an image and a 0/1/2 label map (module docstring).

    Raises:
        InputError: missing ``PATIENT_DICOM``/``MASKS_DICOM``, no ``liver`` mask, unreadable DICOM.
        GeometryError: a mask stack is not on the CT's grid.
    """

    ct_path, masks_path = _member(folder, "PATIENT_DICOM"), _member(folder, "MASKS_DICOM")
    if ct_path is None or masks_path is None:
        raise InputError(
            "expected PATIENT_DICOM and MASKS_DICOM (folders or .zip) in the patient folder", folder
        )
    image = read_dicom_series(ct_path)
    structures = _structures(masks_path)
    kinds = {name: classify_structure(name) for name in structures}
    if LIVER not in kinds.values():
        raise InputError(f"no 'liver' mask among the structures {sorted(structures)}", masks_path)

    def read_mask(name: str) -> np.ndarray:
        vol = read_dicom_series(masks_path, subfolder=structures[name])
        try:
            image.require_same_grid(vol, what=f"mask '{name}'")
        except GeometryError as exc:
            raise GeometryError(f"{masks_path}: {exc} (CT {ct_path})") from exc
        return vol.array > 0

    liver_mask = np.zeros(image.shape, bool)
    for name, kind in kinds.items():
        if kind == LIVER:
            liver_mask |= read_mask(name)
    liver = liver_mask.copy()
    tumor = np.zeros(image.shape, bool)
    inside: dict[str, float | None] = {}
    warnings: list[str] = []
    for name, kind in kinds.items():
        if kind not in (LIVER_TUMOR, LIVER_CYST, OTHER_TUMOR):
            if kind == LIVER_OTHER:
                warnings.append(f"structure '{name}' starts with 'liver' but is not understood; ignored")
            continue
        mask = read_mask(name)
        n = int(mask.sum())
        frac = float((mask & liver_mask).sum() / n) if n else None
        inside[name] = None if frac is None else round(frac, 4)
        if n == 0:
            warnings.append(f"mask '{name}' is empty")
            continue
        if kind == LIVER_TUMOR:
            if frac is not None and frac < MIN_INSIDE_FRACTION:
                warnings.append(
                    f"liver-tumor mask '{name}' lies mostly outside the liver mask "
                    f"({frac:.0%} inside); still mapped to tumor, check it"
                )
            tumor |= mask
            liver |= mask
        elif kind == LIVER_CYST:
            liver |= mask
        elif frac is not None and frac >= MIN_INSIDE_FRACTION:
            warnings.append(
                f"mask '{name}' (not a 'livertumor' name) lies {frac:.0%} inside the liver; "
                "ignored as not a liver tumor, check it"
            )
    label = np.zeros(image.shape, np.uint8)
    label[liver] = 1
    label[tumor] = 2
    mapping: dict[str, Any] = {
        "rule": "liver = liver ∪ liver tumors ∪ cysts (1); tumor = ∪ liver-tumor masks (2); 0/255 masks, >0 is inside",
        "structures": {name: _ACTION[kind] for name, kind in kinds.items()},
        "fraction_inside_liver": inside,
        "ct": str(ct_path),
        "masks": str(masks_path),
    }
    log.info(
        "%s: %s",
        folder.name,
        "; ".join(f"{n} -> {_ACTION[k]}" for n, k in kinds.items() if k != OTHER) or "no liver structures",
    )
    for w in warnings:
        log.warning("%s: %s", folder, w)
    return LoadedCase(image=image, label=LabelMap.on(image, label), mapping=mapping, warnings=tuple(warnings))


def discover_ircadb(src: Path, options: LayoutOptions) -> list[SourceCase]:
    """One patient folder, or a folder holding patient folders (searched recursively).

    A patient folder holds ``PATIENT_DICOM`` and ``MASKS_DICOM`` (each a folder or ``.zip``).
    Case and patient id from the folder name (``3Dircadb1.1`` -> ``ircadb_01``).
    """
    if options.value_map is not None:
        raise ConfigError("--map does not apply to --format ircadb (structures are mapped by name)")
    if _is_patient(src):
        folders = [src]
    else:
        folders = sorted(p for p in src.rglob("*") if p.is_dir() and _is_patient(p))
    if not folders:
        raise InputError(
            "expected a 3D-IRCADb patient folder (with PATIENT_DICOM and MASKS_DICOM, folders or "
            ".zip) or a folder of them, found none",
            src,
        )
    cases = []
    for f in folders:
        cid = ircadb_case_id(f.name)
        cases.append(SourceCase(cid, cid, f, "ircadb", lambda f=f: load_ircadb_patient(f)))
    return cases
