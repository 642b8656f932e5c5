"""DICOM Segmentation objects (DICOM-SEG) with highdicom: write liverseg labels, read any SEG.

Written SEGs hold non-overlapping segments, identified as produced automatically by the
algorithm "liverseg":

* segment 1 "Liver" (SCT 10200004, category Organ): liver tissue outside the tumors (label 1);
* segments 2, 3, ... "Liver tumor N" (SCT 108369006 Neoplasm, category Morphologically Abnormal
  Structure, anatomic region Liver): one segment per lesion (26-connected component of label 2),
  ``N`` the lesion's number in the report, with tracking identifier ``lesion N`` and a tracking
  UID that the structured report's measurement group of that lesion repeats
  (:mod:`liverseg.reporting.dicom_sr`). Without lesions, segment 2 "Liver tumor" is described
  and empty (an explicit "no tumor").

The SEG references every source CT instance (re-read from ``source.metadata["source"]`` +
``["dicom"]["files"]``), frame by frame. For a gantry-tilted source, read onto a regular grid
(:mod:`liverseg.io.dicom_tilt`), the labels are mapped back onto the original slices first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cc3d
import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from liverseg import __version__
from liverseg.errors import GeometryError, InputError, OutputError
from liverseg.io.dicom_tilt import TiltGrid, labels_from_source, labels_to_source
from liverseg.io.hd_bridge import volume_from_affine
from liverseg.io.labels import LabelMap, check_label_map
from liverseg.io.sources import FileSource
from liverseg.io.volume import Volume
from liverseg.utils import atomic_path, code_version

__all__ = ["lesion_components", "read_dicom_seg", "source_datasets", "write_dicom_seg"]

log = logging.getLogger(__name__)

_LIVER_CODE = "10200004"
_TUMOR_CODES = {"108369006", "86049000", "126851005", "93870000", "94381002", "4147007"}
_TUMOR_WORDS = ("tumor", "tumour", "lesion", "neoplasm", "cancer", "metasta", "carcinoma", "hcc")


# ----------------------------------------------------------------------------------------- write
def lesion_components(labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """26-connected components of label 2 numbered 1, 2, ... by decreasing size (int32 array, ids).

    The numbering a SEG gets when the caller gives no lesion map; ``run_segment`` passes the
    report's own numbering instead (:func:`liverseg.reporting.dicom_sr.lesion_map`).
    """

    tumor = labels == 2
    if not tumor.any():
        return np.zeros(labels.shape, np.int32), []
    cc, n = cc3d.connected_components(tumor, connectivity=26, return_N=True)
    counts = np.bincount(cc.reshape(-1), minlength=n + 1)[1:]
    order = np.argsort(-counts, kind="stable")
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[order + 1] = np.arange(1, n + 1, dtype=np.int32)
    return lut[cc], list(range(1, n + 1))


def _segment_descriptions(lesion_ids: Sequence[int]) -> list[Any]:
    algo = hd.AlgorithmIdentificationSequence(
        name="liverseg", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    common = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, "algorithm_identification": algo}
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Liver",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            **common,
        )
    ]
    tumor = {
        "segmented_property_category": codes.SCT.MorphologicallyAbnormalStructure,
        "segmented_property_type": codes.SCT.Neoplasm,
        "anatomic_regions": [codes.SCT.Liver],
        **common,
    }
    if not lesion_ids:
        descriptions.append(hd.seg.SegmentDescription(segment_number=2, segment_label="Liver tumor", **tumor))
    for k, lid in enumerate(lesion_ids):
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=2 + k,
                segment_label=f"Liver tumor {lid}",
                tracking_id=f"lesion {lid}",
                tracking_uid=generate_uid(),
                **tumor,
            )
        )
    return descriptions


def _source_datasets(source: Volume) -> list[Any]:
    """Re-read the headers of the source CT instances, in the volume's slice order."""

    dicom = source.metadata.get("dicom")
    src_path = source.metadata.get("source")
    if not isinstance(dicom, dict) or not dicom.get("files") or not src_path:
        raise InputError(
            "write_dicom_seg needs a source image read from DICOM (metadata 'source' and "
            "'dicom'.'files'), got a volume from "
            f"{src_path or 'an unknown source'} without DICOM references; write a NIfTI label map instead"
        )
    files: list[str] = list(dicom["files"])
    if len(files) != source.shape[0]:
        raise InputError(
            f"write_dicom_seg supports single-frame source series: expected {source.shape[0]} source "
            f"files (one per slice), got {len(files)}",
            src_path,
        )
    datasets = []
    try:
        with FileSource(src_path) as src:
            for member in files:
                with src.open(member) as fh:
                    datasets.append(pydicom.dcmread(fh, stop_before_pixels=True))
    except (OSError, KeyError) as exc:
        raise InputError(f"cannot re-read the source DICOM files ({exc})", src_path) from exc
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    if uids != list(dicom.get("sop_instance_uids", uids)):
        raise InputError(
            "the source DICOM files changed since the image was read (SOP instance UIDs differ)", src_path
        )
    if not datasets[0].get("FrameOfReferenceUID"):
        # Some public data sets (3D-IRCADb) lack it; highdicom needs one. Derive a stable UID from
        # the series UID so repeated exports agree; instances are still referenced by SOP UID.
        for_uid = generate_uid(entropy_srcs=[str(datasets[0].get("SeriesInstanceUID", "")), "FoR"])
        log.warning("%s: source series has no FrameOfReferenceUID; using derived %s", src_path, for_uid)
        for ds in datasets:
            ds.FrameOfReferenceUID = for_uid
    return datasets


def source_datasets(source: Volume) -> list[Any]:
    """The source CT headers (no pixels) in slice order, as the SEG and SR reference them."""
    return _source_datasets(source)


def _segment_array(labels: np.ndarray, lesions: np.ndarray, lesion_ids: Sequence[int]) -> np.ndarray:
    """Label-map style array: 1 liver tissue, 2 + k lesion ``lesion_ids[k]``."""
    out = np.zeros(labels.shape, dtype=np.uint16 if len(lesion_ids) > 250 else np.uint8)
    out[labels == 1] = 1
    if not lesion_ids:
        if np.any(labels == 2):
            raise InputError("the label map holds tumor voxels (label 2) but no lesion is listed")
        return out
    lut = np.zeros(int(lesions.max()) + 1, dtype=out.dtype)
    for k, lid in enumerate(lesion_ids):
        if lid <= 0 or lid >= lut.size:
            raise InputError(f"lesion {lid} is not in the lesion map (ids 1..{lut.size - 1})")
        lut[lid] = 2 + k
    mapped = lut[lesions]
    tumor = labels == 2
    if np.any(tumor & (mapped == 0)):
        raise InputError(
            "every tumor voxel (label 2) must belong to a listed lesion; "
            f"{int(np.count_nonzero(tumor & (mapped == 0)))} voxel(s) do not"
        )
    if np.any(~tumor & (mapped > 0)):
        raise InputError("the lesion map marks voxels that are not tumor (label 2) in the label map")
    out[tumor] = mapped[tumor]
    return out


def write_dicom_seg(
    labels: Volume,
    source: Volume,
    path: str | Path,
    *,
    lesions: np.ndarray | None = None,
    lesion_ids: Sequence[int] | None = None,
) -> Path:
    """Write a label map as a DICOM-SEG referencing the source CT series.

    Args:
        labels: uint8 label map (0 background, 1 liver, 2 tumor) on exactly ``source``'s grid,
            shape ``(z, y, x)``.
        source: the CT volume as returned by :func:`~liverseg.io.read_dicom_series` (its metadata
            locates the source files: folder, zip or DICOMDIR).
        path: output ``.dcm`` file (written atomically; the folder is created).
        lesions: int array on the labels grid: 0 outside tumors, else the lesion number (e.g.
            the report's). ``None``: numbered here by :func:`lesion_components`.
        lesion_ids: the lesion numbers to write, in segment order (default: all, ascending).
            Every tumor voxel must belong to one of them.

    Raises:
        InputError: ``source`` did not come from DICOM, labels hold values outside {0, 1, 2},
            or the lesion map does not cover the tumor voxels exactly.
        GeometryError: ``labels`` (or ``lesions``) is not on the source grid.
        OutputError: the file cannot be written.
    """

    labels = check_label_map(labels)
    datasets = _source_datasets(source)
    source.require_same_grid(labels, "label map")
    if lesions is None:
        lesions, found = lesion_components(labels.array)
        lesion_ids = found if lesion_ids is None else lesion_ids
    elif lesions.shape != labels.shape:
        raise GeometryError(f"lesion map shape {lesions.shape} differs from the label map's {labels.shape}")
    if lesion_ids is None:
        lesion_ids = sorted(int(v) for v in np.unique(lesions) if v > 0)
    array = _segment_array(labels.array, lesions, list(lesion_ids))
    tilt = (source.metadata.get("dicom") or {}).get("tilt")
    if tilt:
        array = labels_to_source(array, TiltGrid.from_metadata(tilt, source.origin))
    descriptions = _segment_descriptions(list(lesion_ids))
    try:
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=array,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=generate_uid(),
            series_number=int(source.metadata["dicom"].get("series_number") or 0) + 1000,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="liverseg",
            manufacturer_model_name="liverseg",
            software_versions=code_version(),
            device_serial_number="none",
            series_description="liverseg liver and tumor segmentation",
            content_label="LIVERSEG",
            omit_empty_frames=bool(array.any()),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(
            f"cannot build a DICOM-SEG from this source series ({exc})", source.metadata.get("source")
        ) from exc
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            seg.save_as(tmp)
        except OSError as exc:
            raise OutputError(f"cannot write the DICOM-SEG ({exc.strerror or exc})", path) from exc
    log.info("wrote DICOM-SEG with %d segment(s) to %s", len(descriptions), path)
    return path


# ------------------------------------------------------------------------------------------ read
def _segment_mapping(seg: Any, path: Path) -> dict[int, int]:
    """Segment number -> liverseg label, by segment name/type, else by number (1 liver, 2 tumor)."""
    mapping: dict[int, int] = {}
    names: dict[int, str] = {}
    for desc in seg.SegmentSequence:
        number = int(desc.SegmentNumber)
        label = str(desc.get("SegmentLabel", "")).lower()
        codes_ = {str(item.CodeValue) for item in desc.get("SegmentedPropertyTypeCodeSequence", [])}
        names[number] = label
        if codes_ & _TUMOR_CODES or any(w in label for w in _TUMOR_WORDS):
            mapping[number] = 2
        elif _LIVER_CODE in codes_ or "liver" in label:
            mapping[number] = 1
    if not mapping:
        mapping = {n: n for n in names if n in (1, 2)}
        if mapping:
            log.info("%s: no segment named liver/tumor; using segment numbers 1 -> liver, 2 -> tumor", path)
    if not mapping:
        raise InputError(
            "expected DICOM-SEG segments named liver / tumor (or numbered 1 / 2), got segments "
            f"{ {n: names[n] for n in sorted(names)} }",
            path,
        )
    ignored = sorted(set(names) - set(mapping))
    if ignored:
        log.info("%s: ignoring segments %s", path, {n: names[n] for n in ignored})
    return mapping


def _compose(masks: np.ndarray, numbers: list[int], mapping: dict[int, int]) -> np.ndarray:
    """Channel-last per-segment masks -> uint8 label map (tumor wins over liver)."""
    out = np.zeros(masks.shape[:-1], dtype=np.uint8)
    for label in (1, 2):
        for c, n in enumerate(numbers):
            if mapping[n] == label:
                out[masks[..., c] >= 0.5] = label
    return out


def read_dicom_seg(path: str | Path, reference: Volume | None = None) -> LabelMap:
    """Read a DICOM-SEG as a liverseg label map (uint8: 1 liver, 2 tumor).

    Args:
        path: the SEG file.
        reference: the image to place the labels on. When it came from DICOM and the SEG
            references its instances, frames are matched by SOP instance UID; otherwise the SEG's
            own plane positions are matched onto the reference grid (no resampling).
            Without a reference the grid spans the SEG's frames.

    Returns:
        Label volume ``(z, y, x)`` on the reference grid (or the SEG's own).

    Raises:
        InputError: unreadable file, not a SEG, no liver/tumor segment.
        GeometryError: the SEG's frames do not lie on the reference grid.
    """

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except (ValueError, AttributeError, OSError, TypeError) as exc:
        raise InputError(f"expected a DICOM Segmentation object, could not read one ({exc})", path) from exc
    mapping = _segment_mapping(seg, path)
    numbers = sorted(mapping)
    dicom = reference.metadata.get("dicom") if reference is not None else None
    ref_uids = list(dicom.get("sop_instance_uids", [])) if isinstance(dicom, dict) else []
    seg_uids = {u[2] for u in seg.get_source_image_uids()}
    meta = {"source": str(path), "segments": {n: mapping[n] for n in numbers}}
    if reference is not None and ref_uids and seg_uids and seg_uids <= set(ref_uids):
        masks = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=ref_uids, segment_numbers=numbers, dtype=np.float32
        )
        composed = _compose(masks, numbers, mapping)
        tilt = dicom.get("tilt") if isinstance(dicom, dict) else None
        if tilt:  # frames lie on the tilted source slices: back onto the regular grid
            composed = labels_from_source(composed, TiltGrid.from_metadata(tilt, reference.origin))
        return _on_grid(reference, composed, meta)
    hvol = seg.get_volume(segment_numbers=numbers, combine_segments=False, dtype=np.float32)
    if reference is None:
        masks = np.asarray(hvol.array)
        masks = masks[..., None] if masks.ndim == 3 else masks
        return check_label_map(volume_from_affine(_compose(masks, numbers, mapping), hvol.affine, **meta))
    ref_geometry = hd.VolumeGeometry(reference.affine, reference.shape, "PATIENT")
    try:
        matched = hvol.match_geometry(ref_geometry, tol=1e-3)
    except (ValueError, RuntimeError) as exc:
        raise GeometryError(
            f"{path}: the DICOM-SEG frames do not lie on the reference image grid "
            f"(shape {reference.shape}, spacing {reference.spacing}): {exc}"
        ) from exc
    return _on_grid(reference, _compose(np.asarray(matched.array), numbers, mapping), meta)


def _on_grid(reference: Volume, array: np.ndarray, meta: dict[str, Any]) -> LabelMap:
    return LabelMap.on(reference.grid, array, **meta)
