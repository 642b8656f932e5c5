"""The segmentation entry points shared by the CLI (``liverseg segment``) and the web service.

Path of one CT: read -> canonical orientation -> HU check -> stage 1 (liver box) -> crop ->
stage 2 (liver + tumor, 2.5D, optional TTA) -> post-processing -> back to the input grid ->
write -> measure -> report.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from liverseg import catalog
from liverseg.errors import InputError, OutputError
from liverseg.inference.backends import resolve_device
from liverseg.inference.lesion_confidence import LesionModel, decide_lesions
from liverseg.inference.loading import load_cascade
from liverseg.inference.postprocess import postprocess_labels
from liverseg.io import (
    LabelMap,
    Volume,
    read_volume,
    source_datasets,
    to_canonical,
    write_dicom_seg,
    write_dicom_sr,
    write_volume,
)
from liverseg.io.itk_files import ITK_WRITE_SUFFIXES, suffix_of, write_channels
from liverseg.preprocessing import check_ct_intensities, check_field_of_view, check_volume_size
from liverseg.reporting import build_report, write_html, write_overlays, write_report_json
from liverseg.reporting.dicom_sr import CODING_SCHEMES, lesion_map, measurement_report, seg_reference
from liverseg.utils import ensure_parent, output_transaction, written_path

log = logging.getLogger(__name__)

__all__ = [
    "LoadedModel",
    "SegmentOptions",
    "SegmentResult",
    "check_output_paths",
    "dicom_input_summary",
    "input_warnings",
    "liver_attenuation_warning",
    "prepare_model",
    "run_segment",
    "segment_volume",
]

ProgressFn = Callable[[str, float], None]
# A segmentation with less liver parenchyma (label 1) than this is not a plausible liver (the
# smallest adult livers are ~600 ml; 50 ml also covers scans that catch only the liver's tip).
MIN_LIVER_PARENCHYMA_ML = 50.0
# Median attenuation of liver parenchyma seen in CT (HU). Unenhanced normal liver is 50-70 HU and
# fatty liver down to ~10-20 HU; portal-venous enhancement reaches ~150 HU. A segmented "liver"
# outside this range is probably not liver (e.g. a water-filled phantom, 0 HU): the result is kept
# (dropping a real, severely fatty liver would be worse) but the report says why it is suspect.
LIVER_HU_PLAUSIBLE = (15.0, 220.0)
DEFAULT_MIN_LESION_MM3 = 10.0  # for a model whose model.json does not set postprocess.min_lesion_mm3
NO_LIVER_WARNING = (
    "no liver was found in this scan (is it an abdominal CT covering the liver?); the label map is empty"
)


@dataclass(frozen=True)
class SegmentOptions:
    """Options of one segmentation run.

    Attributes:
        model: shipped model name, ``default``, a model folder or a checkpoint path.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        tta: test-time augmentation (stage 2 averaged over in-plane scales 0.9, 1.0, 1.1).
        min_lesion_mm3: tumor components smaller than this (mm^3) are relabelled liver; None takes
            the model's ``postprocess.min_lesion_mm3`` (:data:`DEFAULT_MIN_LESION_MM3` when absent).
        backend: ``auto`` (the model's measured-faster CPU backend), ``torch`` or ``onnx``.
        keep_probabilities: also return class probabilities on the input grid.
    """

    model: str = "default"
    device: str = "auto"
    tta: bool = False
    min_lesion_mm3: float | None = None
    backend: str = "auto"
    keep_probabilities: bool = False


@dataclass
class SegmentResult:
    """Result of :func:`segment_volume`, on the input's grid."""

    labels: Volume  # uint8 0/1/2, exactly the input grid
    probabilities: np.ndarray | None  # float32 (3, z, y, x) on the input grid, when requested
    liver_found: bool
    timings_s: dict[str, float]
    model: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # uint8 on the input grid: encoded confidence of every listed lesion candidate (confirmed ones
    # are label 2, possible ones are liver in ``labels``); None for a model without a lesion model
    # (liverseg.inference.lesion_confidence.decode_confidence reads it)
    lesion_confidence: Volume | None = None


@dataclass(frozen=True)
class LoadedModel:
    """A model resolved and loaded for inference (see :func:`prepare_model`)."""

    bundle: Any  # liverseg.catalog.ModelBundle
    device: str  # "cpu" or "cuda" (resolved)
    backend: str  # "torch" or "onnx" (resolved)
    cascade: Any  # liverseg.inference.predictor.Cascade


def prepare_model(options: SegmentOptions = SegmentOptions()) -> LoadedModel:
    """Resolve ``options.model``, pick device and backend, and load the cascade.

    Loaded cascades are cached per process (:func:`liverseg.inference.loading.load_cascade`), so
    calling this once when a long-lived worker starts (a cohort worker, a service worker) makes
    every later :func:`run_segment` with the same options reuse the loaded networks.
    """

    bundle = catalog.resolve_model(options.model)  # looked up at call time (tests replace it)
    device = resolve_device(options.device)
    backend = options.backend
    if backend == "auto":
        backend = str(bundle.info.get("cpu_backend", "torch")) if device == "cpu" else "torch"
    return LoadedModel(bundle, device, backend, load_cascade(bundle, device, backend))


def liver_attenuation_warning(hu: np.ndarray, parenchyma: np.ndarray) -> str | None:
    """A warning when the median HU of the segmented parenchyma is not liver-like, else None.

    Args:
        hu: CT intensities (HU), any shape.
        parenchyma: boolean mask of the same shape (label 1); must not be empty.

    See :data:`LIVER_HU_PLAUSIBLE` for the range and why the result is only flagged.
    """
    median = float(np.median(hu[parenchyma]))
    lo, hi = LIVER_HU_PLAUSIBLE
    if lo <= median <= hi:
        return None
    return (
        f"the segmented liver has a median attenuation of {median:.0f} HU, outside the range of liver "
        f"tissue ({lo:.0f} to {hi:.0f} HU): check that this is an abdominal CT covering the liver "
        "and review the segmentation before using its numbers"
    )


def input_warnings(image: Volume) -> list[str]:
    """Warnings the readers attached to ``image``, repeated in the report so whoever reads the
    numbers sees them: a documented fallback a reader used (e.g. the nearest orthonormal
    direction of a slightly sheared NIfTI) and what the DICOM reader left out (files, reasons),
    a tie between series, a gantry-tilt resampling."""
    warnings = [str(w) for w in image.metadata.get("warnings") or []]
    warnings.extend(str(w) for w in (image.metadata.get("dicom") or {}).get("warnings", []))
    return warnings


def segment_volume(
    image: Volume, options: SegmentOptions = SegmentOptions(), progress: ProgressFn | None = None
) -> SegmentResult:
    """Segment liver and tumors in a CT ``image`` (HU). See the module docstring for the steps."""

    timings: dict[str, float] = {}
    warnings: list[str] = []
    report = progress or (lambda stage, frac: None)

    t0 = time.perf_counter()
    check_volume_size(image)
    check_field_of_view(image)
    ct_stats = check_ct_intensities(image, path=image.metadata.get("source"))
    warnings.extend(str(w) for w in (ct_stats or {}).get("warnings", []))
    warnings.extend(input_warnings(image))
    loaded = prepare_model(options)
    bundle, device, backend, cascade = loaded.bundle, loaded.device, loaded.backend, loaded.cascade
    timings["load_model"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    canon, reorientation = to_canonical(image.with_array(image.array.astype(np.float32, copy=False)))
    timings["reorient"] = time.perf_counter() - t0
    report("preprocess", 1.0)

    result = cascade.segment(
        canon, tta=options.tta, keep_probabilities=options.keep_probabilities, progress=report
    )
    timings.update(result.timings_s)

    t0 = time.perf_counter()
    post_cfg = bundle.info.get("postprocess", {})
    lesion_model = LesionModel.from_dict(post_cfg["lesion_model"]) if "lesion_model" in post_cfg else None
    labels_c = result.labels
    conf_c: np.ndarray | None = None
    if result.box is not None:  # labels are 0 outside the box: post-process the box only (memory)
        labels_c[result.box] = postprocess_labels(
            labels_c[result.box],
            canon.spacing,
            min_lesion_mm3=(
                float(post_cfg.get("min_lesion_mm3", DEFAULT_MIN_LESION_MM3))
                if options.min_lesion_mm3 is None
                else options.min_lesion_mm3
            ),
            tumor_prob=result.tumor_prob,
            min_lesion_confidence=float(post_cfg.get("min_lesion_confidence", 0.0)),
        )
        if lesion_model is not None and result.tumor_prob is not None:
            decision = decide_lesions(
                labels_c[result.box], result.tumor_prob, canon.array[result.box], canon.spacing, lesion_model
            )
            labels_c[result.box] = decision.labels
            conf_c = np.zeros(canon.shape, np.uint8)
            conf_c[result.box] = decision.confidence_map
            log.info(
                "lesion model: %d confirmed, %d possible, %d dropped candidate(s)",
                decision.n_confirmed,
                decision.n_possible,
                decision.n_dropped,
            )
    timings["postprocess"] = time.perf_counter() - t0
    parenchyma_ml = float((labels_c == 1).sum()) * canon.voxel_volume_ml
    liver_found = parenchyma_ml >= MIN_LIVER_PARENCHYMA_ML
    if not liver_found and labels_c.any():
        # e.g. a water-filled structure taken for an all-tumor "liver": not a plausible liver
        log.info("only %.1f ml of liver parenchyma was segmented: treated as no liver", parenchyma_ml)
        labels_c[:] = 0
        if conf_c is not None:
            conf_c[:] = 0
    if not liver_found:
        log.warning(NO_LIVER_WARNING)  # the report adds its own "no liver" warning
    else:
        assert result.box is not None  # a liver was found, so stage 1 gave a box
        # labels are 0 outside the box: the median over the box is the median over the volume
        attenuation = liver_attenuation_warning(canon.array[result.box], labels_c[result.box] == 1)
        if attenuation:
            log.warning(attenuation)
            warnings.append(attenuation)

    t0 = time.perf_counter()
    labels = LabelMap.on(image, reorientation.to_original_array(labels_c))
    probs = None
    if result.probabilities is not None:
        probs = reorientation.to_original_array(result.probabilities)
    confidence = None if conf_c is None else image.with_array(reorientation.to_original_array(conf_c))
    timings["inverse_mapping"] = time.perf_counter() - t0
    report("postprocess", 1.0)
    model_info = {**bundle.describe(), "backend": backend, "device": device}
    return SegmentResult(labels, probs, liver_found, timings, model_info, warnings, confidence)


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _probe_writable(path: Path, what: str) -> None:
    """Create, write, fsync and remove a small file beside ``path``: permissions, read-only or full
    file systems show up now, not after the segmentation."""

    try:
        fd, name = tempfile.mkstemp(prefix=".liverseg-probe.", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot create the {what} ({exc.strerror or exc})", path) from exc
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    except OSError as exc:
        raise OutputError(f"cannot write the {what} ({exc.strerror or exc})", path) from exc
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(name)


def check_output_paths(input_path: Path, outputs: dict[str, Path | None], overlays_dir: Path | None) -> None:
    """Fail before any work when an output cannot or must not be written.

    Refused: an output that is the input itself, two outputs naming the same file, a volume output
    (label map, probabilities) whose suffix is not a writable volume format, an output that is an
    existing folder, and a folder where a file cannot be created, written and fsynced (permissions,
    read-only or full file system).

    Args:
        input_path: the CT (file or DICOM folder/zip).
        outputs: description -> path (``None``: not requested); ``"label map"`` and
            ``"probabilities"`` are checked for a volume suffix.
        overlays_dir: the overlay pictures folder, or ``None``.
    """

    named = [(what, Path(p)) for what, p in outputs.items() if p is not None]
    for what, path in named:
        if what in ("label map", "probabilities") and suffix_of(path) not in ITK_WRITE_SUFFIXES:
            raise OutputError(
                f"expected an output suffix among {', '.join(ITK_WRITE_SUFFIXES)} for the {what}, "
                f"got {suffix_of(path) or 'none'!r}",
                path,
            )
        if _same_path(path, input_path):
            raise OutputError(f"the {what} output is the input CT itself; choose another file", path)
        if path.is_dir():
            raise OutputError(f"the {what} output is a folder; give a file name", path)
    for i, (what_a, a) in enumerate(named):
        for what_b, b in named[i + 1 :]:
            if _same_path(a, b):
                raise OutputError(f"the {what_a} and the {what_b} outputs are the same file", a)
    if overlays_dir is not None:
        if _same_path(overlays_dir, input_path) or overlays_dir.is_file():
            raise OutputError("the overlays output must be a folder other than the input", overlays_dir)
        named.append(("overlay pictures", overlays_dir / "overview.png"))
    probed: set[Path] = set()
    for what, path in named:  # one probe per folder
        if ensure_parent(path).parent.resolve() not in probed:
            probed.add(path.parent.resolve())
            _probe_writable(path, what)


def run_segment(
    input_path: str | Path,
    output_path: str | Path,
    *,
    report_json: str | Path | None = None,
    html: str | Path | None = None,
    overlays_dir: str | Path | None = None,
    dicom_seg: str | Path | None = None,
    dicom_sr: str | Path | None = None,
    probabilities: str | Path | None = None,
    options: SegmentOptions = SegmentOptions(),
    progress: ProgressFn | None = None,
    series: str | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Segment one CT file or DICOM series and write the requested outputs; return the report.

    Every output location is checked before any work (:func:`check_output_paths`). Outputs are
    written in one :func:`~liverseg.utils.output_transaction`: each is flushed, fsynced and (the
    volumes) read back and compared, and they appear together at the end; on any error none of
    them appears and files of an earlier run stay as they were. The label map has exactly the
    input's grid. ``dicom_sr`` (a TID 1500 structured report) references the segments of ``dicom_seg``, so it
    needs ``dicom_seg`` too. ``series`` picks the DICOM series or stack to read (SeriesInstanceUID,
    SeriesNumber or stack id) instead of the automatic choice. ``identity`` (patient ID, accession
    number, study date, series description, label) goes into the report's ``input.identity`` as
    given; without it a DICOM input's own header identity is used
    (:func:`liverseg.io.dicom_identity.identity_from_dataset`).
    """

    t_start = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    if dicom_sr is not None and dicom_seg is None:
        raise InputError("--dicom-sr references the segments of the DICOM-SEG: give --dicom-seg too")
    check_output_paths(
        input_path,
        {
            "label map": output_path,
            "JSON report": None if report_json is None else Path(report_json),
            "HTML report": None if html is None else Path(html),
            "DICOM-SEG": None if dicom_seg is None else Path(dicom_seg),
            "DICOM-SR": None if dicom_sr is None else Path(dicom_sr),
            "probabilities": None if probabilities is None else Path(probabilities),
        },
        None if overlays_dir is None else Path(overlays_dir),
    )

    t0 = time.perf_counter()
    image = read_volume(input_path, kind="image", series=series)
    t_read = time.perf_counter() - t0
    if dicom_seg is not None and "dicom" not in image.metadata:
        raise InputError(
            "--dicom-seg needs DICOM input (a folder, .zip or DICOMDIR), got a non-DICOM file", input_path
        )
    if probabilities is not None:
        options = SegmentOptions(**{**options.__dict__, "keep_probabilities": True})

    result = segment_volume(image, options, progress)
    timings = {"read": t_read, **result.timings_s}

    with output_transaction():
        t0 = time.perf_counter()
        write_volume(result.labels, output_path)
        if probabilities is not None and result.probabilities is not None:
            _write_probabilities(image, result.probabilities, Path(probabilities))
        timings["write"] = time.perf_counter() - t0

        input_info: dict[str, Any] = {"name": input_path.name, "format": _input_format(input_path, image)}
        if identity is None:
            identity = (image.metadata.get("dicom") or {}).get("identity")
        if identity:
            input_info["identity"] = dict(identity)
        if "dicom" in image.metadata:
            input_info["dicom"] = dicom_input_summary(image)
        t0 = time.perf_counter()
        report = build_report(
            image,
            result.labels,
            model=result.model,
            timings_s=timings,
            input_info=input_info,
            warnings=result.warnings,
            lesion_confidence=result.lesion_confidence,
        )
        timings["measure"] = time.perf_counter() - t0
        if dicom_seg is not None:
            t0 = time.perf_counter()
            _write_dicom_outputs(image, result.labels, report, Path(dicom_seg), dicom_sr)
            timings["write"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        if html is not None:
            write_html(report, image, result.labels, html)
        if overlays_dir is not None:
            write_overlays(image, result.labels, report, overlays_dir)
        timings["report"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start  # everything but writing the JSON itself
        report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
        if report_json is not None:
            write_report_json(report, report_json)
        return report


def _write_dicom_outputs(
    image: Volume, labels: Volume, report: dict[str, Any], seg_path: Path, sr_path: str | Path | None
) -> None:
    """The DICOM-SEG (one segment per report lesion) and, if asked, the TID 1500 SR."""

    lesions, ids = lesion_map(image, labels, report)
    write_dicom_seg(labels, image, seg_path, lesions=lesions, lesion_ids=ids)
    if sr_path is None:
        return
    seg = pydicom.dcmread(written_path(seg_path), stop_before_pixels=True)  # not yet renamed
    sources = source_datasets(image)
    content = measurement_report(report, seg=seg_reference(seg), source_images=sources)
    write_dicom_sr(
        content, evidence=[seg, *sources], source=image, path=sr_path, coding_schemes=CODING_SCHEMES
    )


def dicom_input_summary(image: Volume) -> dict[str, Any]:
    """``report["input"]["dicom"]``: the series read, how it was chosen, what was left out."""
    dicom = image.metadata["dicom"]
    keys = (
        "series_instance_uid",
        "study_instance_uid",
        "series_number",
        "series_description",
        "modality",
        "stack_id",
        "container",
        "transfer_syntax_uid",
    )
    out = {k: dicom.get(k) for k in keys}
    tilt = dicom.get("tilt")
    out["tilt_deg"] = tilt["tilt_deg"] if tilt else 0.0
    out["selection"] = dicom.get("selection")
    return out


def _input_format(path: Path, image: Volume) -> str:
    if "dicom" in image.metadata:
        kind = image.metadata["dicom"].get("container")
        if kind == "dicomdir":
            return "dicomdir"
        return "dicom-zip" if kind == "zip" or path.suffix.lower() == ".zip" else "dicom-folder"
    name = path.name.lower()
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.endswith(suffix):
            return suffix.lstrip(".")
    return "unknown"


def _write_probabilities(image: Volume, probs: np.ndarray, path: Path) -> None:
    """Class probabilities (background, liver, tumor) as a 3-component float32 image on the input grid."""

    write_channels(image.grid, probs.astype(np.float32, copy=False), path)
