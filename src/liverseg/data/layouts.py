"""Source layouts understood by ``liverseg data prepare --format FORMAT``.

=============== ==========================================================================
``lits``        ``volume-N.nii[.gz]`` + ``segmentation-N.nii[.gz]`` (subfolders allowed) -> ``lits_N``
``msd``         ``imagesTr/``, ``labelsTr/``, ``dataset.json`` (Task03_Liver)          -> ``msd_<stem>``
``ircadb``      3D-IRCADb patient folder(s): ``PATIENT_DICOM`` + ``MASKS_DICOM``      -> ``ircadb_NN``
``chaos``       CHAOS CT case folder(s): ``DICOM_anon/`` + ``Ground/``                -> ``chaos_NN``
``png-slices``  seed format: ``images/`` + ``masks/`` PNGs (127 liver, 255 lesion)    -> ``png_<name>``
``nifti-pairs`` ``images/`` + ``labels/`` by name, or ``<name>_image``/``<name>_label`` -> ``<name>``
``mrc``         ``img_N.mrc`` + ``lab_N.mrc`` (LiTS crop of liver-ct-segmentation-package) -> ``lits_N``
``slice-export`` windowed JPEG/PNG slice pictures + label PNGs (``--window``, ``--channel``,
                ``--spacing-csv``; :mod:`liverseg.data.slice_export`)    -> ``<prefix>_N``
=============== ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from liverseg.data.cases import LayoutOptions, SourceCase, natural_key
from liverseg.data.ircadb import discover_ircadb
from liverseg.data.mrc import discover_mrc
from liverseg.data.nifti_layouts import discover_lits, discover_msd, discover_nifti_pairs
from liverseg.data.slice_export import discover_slice_export
from liverseg.data.slice_layouts import discover_chaos, discover_png_slices
from liverseg.errors import ConfigError, InputError

__all__ = ["LAYOUTS", "discover_cases"]

#: format name -> discovery function ``(src, options) -> [SourceCase]``
LAYOUTS: dict[str, Callable[[Path, LayoutOptions], list[SourceCase]]] = {
    "lits": discover_lits,
    "msd": discover_msd,
    "ircadb": discover_ircadb,
    "chaos": discover_chaos,
    "png-slices": discover_png_slices,
    "nifti-pairs": discover_nifti_pairs,
    "mrc": discover_mrc,
    "slice-export": discover_slice_export,
}
#: formats whose files store no spacing, so ``--spacing`` applies
_NO_STORED_SPACING = ("mrc", "png-slices", "slice-export")
_EXPORT_ONLY = ("window_hu", "channel", "spacing_csv", "case_prefix")


def discover_cases(fmt: str, src: str | Path, options: LayoutOptions | None = None) -> list[SourceCase]:
    """Find the cases of a source tree in layout ``fmt`` (nothing is read yet), sorted by case id.

    Raises:
        ConfigError: unknown format, or an option the format does not use.
        InputError: ``src`` missing, no case found, or two cases with the same id.
    """
    options = options or LayoutOptions()
    if fmt not in LAYOUTS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(LAYOUTS)}")
    if options.spacing_zyx is not None and fmt not in _NO_STORED_SPACING:
        raise ConfigError(
            f"--spacing applies to formats without stored spacing ({', '.join(_NO_STORED_SPACING)}), "
            f"not {fmt!r}"
        )
    given = [name for name in _EXPORT_ONLY if getattr(options, name) is not None]
    if given and fmt != "slice-export":
        flags = ", ".join("--" + name.replace("_hu", "").replace("_", "-") for name in given)
        raise ConfigError(f"{flags} apply to --format slice-export only, not {fmt!r}")
    src = Path(src)
    if not src.is_dir():
        raise InputError(f"does not exist or is not a folder; expected a {fmt} source folder", src)
    cases = sorted(LAYOUTS[fmt](src, options), key=lambda c: natural_key(c.case_id))
    seen: dict[str, Path] = {}
    for c in cases:
        if c.case_id in seen:
            raise InputError(
                f"two sources give the case id {c.case_id!r}: {seen[c.case_id]} and {c.source}", src
            )
        seen[c.case_id] = c.source
    return cases
