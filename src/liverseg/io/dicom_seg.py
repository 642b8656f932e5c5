"""DICOM Segmentation objects (DICOM-SEG) with highdicom: write liverseg labels, read any SEG.

Written SEGs hold two segments, "Liver" (SCT 10200004, category Organ) and "Liver tumor"
(SCT 108369006 Neoplasm, category Morphologically Abnormal Structure, anatomic region Liver),
identified as produced automatically by the algorithm "liverseg", and reference every source
CT instance (re-read from ``source.metadata["source"]`` + ``["dicom"]["files"]``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from liverseg.errors import GeometryError, InputError, OutputError
from liverseg.io.labels import check_label_map
from liverseg.io.volume import Volume
from liverseg.utils import atomic_path

__all__ = ["read_dicom_seg", "write_dicom_seg"]

log = logging.getLogger(__name__)

_LIVER_CODE = "10200004"
_TUMOR_CODES = {"108369006", "86049000", "126851005", "93870000", "94381002", "4147007"}
_TUMOR_WORDS = ("tumor", "tumour", "lesion", "neoplasm", "cancer", "metasta", "carcinoma", "hcc")


# ----------------------------------------------------------------------------------------- write
def _segment_descriptions() -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from liverseg import __version__

    algo = hd.AlgorithmIdentificationSequence(
        name="liverseg", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    common = {"algorithm_type": hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, "algorithm_identification": algo}
    return [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="Liver",
            segmented_property_category=codes.SCT.Organ,
            segmented_property_type=codes.SCT.Liver,
            **common,
        ),
        hd.seg.SegmentDescription(
            segment_number=2,
            segment_label="Liver tumor",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            anatomic_regions=[codes.SCT.Liver],
            **common,
        ),
    ]


def _source_datasets(source: Volume) -> list[Any]:
    """Re-read the headers of the source CT instances, in the volume's slice order."""
    import pydicom

    from liverseg.io.sources import FileSource

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
        from pydicom.uid import generate_uid

        # Some public data sets (3D-IRCADb) lack it; highdicom needs one. Derive a stable UID from
        # the series UID so repeated exports agree; instances are still referenced by SOP UID.
        for_uid = generate_uid(entropy_srcs=[str(datasets[0].get("SeriesInstanceUID", "")), "FoR"])
        log.warning("%s: source series has no FrameOfReferenceUID; using derived %s", src_path, for_uid)
        for ds in datasets:
            ds.FrameOfReferenceUID = for_uid
    return datasets


def write_dicom_seg(labels: Volume, source: Volume, path: str | Path) -> Path:
    """Write a label map as a DICOM-SEG referencing the source CT series.

    Args:
        labels: uint8 label map (0 background, 1 liver, 2 tumor) on exactly ``source``'s grid,
            shape ``(z, y, x)``.
        source: the CT volume as returned by :func:`~liverseg.io.read_dicom_series` (its metadata
            locates the source files: folder or zip).
        path: output ``.dcm`` file (written atomically; the folder is created).

    Raises:
        InputError: ``source`` did not come from DICOM, or labels hold values outside {0, 1, 2}.
        GeometryError: ``labels`` is not on the source grid.
        OutputError: the file cannot be written.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    from liverseg.utils import code_version

    labels = check_label_map(labels)
    datasets = _source_datasets(source)
    source.require_same_grid(labels, "label map")
    present = sorted({int(v) for v in np.unique(labels.array)} - {0})
    # Both segments are always described (an empty tumor segment is an explicit "no tumor").
    descriptions = _segment_descriptions()
    try:
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=labels.array,
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
            omit_empty_frames=bool(present),
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
    log.info("wrote DICOM-SEG with segments %s to %s", [d.SegmentLabel for d in descriptions], path)
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


def read_dicom_seg(path: str | Path, reference: Volume | None = None) -> Volume:
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
    import highdicom as hd

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
        return _on_grid(reference, _compose(masks, numbers, mapping), meta)
    hvol = seg.get_volume(segment_numbers=numbers, combine_segments=False, dtype=np.float32)
    if reference is None:
        from liverseg.io.hd_bridge import volume_from_affine

        masks = np.asarray(hvol.array)
        masks = masks[..., None] if masks.ndim == 3 else masks
        return volume_from_affine(_compose(masks, numbers, mapping), hvol.affine, **meta)
    ref_geometry = hd.VolumeGeometry(reference.affine, reference.shape, "PATIENT")
    try:
        matched = hvol.match_geometry(ref_geometry, tol=1e-3)
    except (ValueError, RuntimeError) as exc:
        raise GeometryError(
            f"{path}: the DICOM-SEG frames do not lie on the reference image grid "
            f"(shape {reference.shape}, spacing {reference.spacing}): {exc}"
        ) from exc
    return _on_grid(reference, _compose(np.asarray(matched.array), numbers, mapping), meta)


def _on_grid(reference: Volume, array: np.ndarray, meta: dict[str, Any]) -> Volume:
    return Volume(array, reference.spacing, reference.origin, reference.direction, meta)
