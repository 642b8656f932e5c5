"""Segment a CT from the PACS and store the DICOM-SEG and the structured report back into its study.

1. Which series: the study's metadata (WADO-RS, headers only) goes through the same scan, stack
   and selection rules as a local export (:mod:`liverseg.io.dicom_select`), or the requested
   series is taken;
2. its instances are pulled with WADO-RS into a temporary folder;
3. the real :func:`liverseg.inference.run_segment` writes the label map, the JSON report, the
   DICOM-SEG and the TID 1500 SR into ``out_dir``;
4. SEG and SR are stored with STOW-RS into the same study (highdicom gives them the source's
   study and patient); ``out_dir/pacs.json`` records the study-level choice and what was stored.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom

from liverseg.errors import InputError
from liverseg.inference import SegmentOptions, run_segment
from liverseg.inference.api import ProgressFn
from liverseg.io.dicom_scan import SkippedFile, classify, summarize_skipped
from liverseg.io.dicom_select import Selection, select_stack
from liverseg.io.dicom_stacks import find_stacks
from liverseg.pacs.client import PacsClient
from liverseg.utils import atomic_write_text

__all__ = ["NothingToSegmentError", "PacsResult", "choose_series", "segment_from_pacs"]

log = logging.getLogger(__name__)


class NothingToSegmentError(InputError):
    """The study (or the requested series) holds no regular stack of image slices to segment."""


@dataclass
class PacsResult:
    """What one PACS segmentation produced (files in ``out_dir``, UIDs of what was stored)."""

    study_instance_uid: str
    series_instance_uid: str
    seg_sop_instance_uid: str
    sr_sop_instance_uid: str
    stored: bool
    out_dir: Path
    report: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (``pacs.json``, the CLI's ``--json``)."""
        r = self.report
        return {
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "seg_sop_instance_uid": self.seg_sop_instance_uid,
            "sr_sop_instance_uid": self.sr_sop_instance_uid,
            "stored": self.stored,
            "out_dir": str(self.out_dir),
            "liver_found": r["liver_found"],
            "liver_volume_ml": r["liver_volume_ml"],
            "tumor_volume_ml": r["tumor_volume_ml"],
            "tumor_burden_percent": r["tumor_burden_percent"],
            "lesion_count": r["lesion_count"],
        }


def choose_series(client: PacsClient, study_uid: str, series: str | None = None) -> Selection:
    """The stack to segment in a PACS study, by the rules of a local export (headers only).

    Raises:
        NothingToSegmentError: the study has no regular stack of slices (or ``series`` matches
            none); the message says why.
        PacsError: the metadata could not be retrieved.
    """
    datasets = client.study_metadata(study_uid)
    images = []
    skipped: list[SkippedFile] = []
    for ds in datasets:
        item = classify(ds, f"{ds.get('SeriesInstanceUID', '')}/{ds.get('SOPInstanceUID', '')}.dcm")
        if isinstance(item, SkippedFile):
            skipped.append(item)
        else:
            images.append(item)
    if not images:
        raise NothingToSegmentError(
            f"expected DICOM images, found none among {len(datasets)} instance(s) "
            f"({summarize_skipped(skipped)})",
            f"study {study_uid}",
        )
    stacks, rejected, skipped_images = find_stacks(images)
    try:
        return select_stack(
            stacks,
            rejected,
            [*skipped, *skipped_images],
            series=series,
            source=f"study {study_uid}",
            n_files=len(datasets),
        )
    except InputError as exc:
        raise NothingToSegmentError(str(exc)) from exc


def segment_from_pacs(
    client: PacsClient,
    study_uid: str,
    out_dir: str | Path,
    *,
    series: str | None = None,
    options: SegmentOptions = SegmentOptions(),
    store: bool = True,
    progress: ProgressFn | None = None,
    work_dir: str | Path | None = None,
) -> PacsResult:
    """Pull a study's CT (or the requested series), segment it, store SEG + SR back (see module docstring).

    Args:
        client: the PACS.
        study_uid: the study.
        out_dir: where ``labels.nii.gz``, ``report.json``, ``seg.dcm``, ``sr.dcm`` and ``pacs.json`` go.
        series: SeriesInstanceUID, SeriesNumber or stack id; ``None`` applies the selection rules.
        options: segmentation options.
        store: store SEG and SR into the study (STOW-RS); ``False`` keeps them local only.
        work_dir: where the pulled instances are kept while segmenting (a temporary folder).

    Raises:
        NothingToSegmentError: nothing segmentable in the study (or the requested series).
        InputError: the pulled series cannot be read; a bad model name.
        PacsError: a DICOMweb request failed (nothing is stored then).
    """
    out = Path(out_dir)
    selection = choose_series(client, study_uid, series)
    chosen = selection.chosen
    log.info(
        "study %s: segmenting series %s (%s, %d slices): %s",
        study_uid,
        chosen.series_number,
        chosen.series_instance_uid,
        chosen.n_slices,
        selection.why(),
    )
    with tempfile.TemporaryDirectory(prefix="liverseg-pacs-", dir=work_dir) as tmp:
        folder = Path(tmp) / chosen.series_instance_uid
        client.retrieve_series(study_uid, chosen.series_instance_uid, folder)
        report = run_segment(
            folder,
            out / "labels.nii.gz",
            report_json=out / "report.json",
            dicom_seg=out / "seg.dcm",
            dicom_sr=out / "sr.dcm",
            options=options,
            progress=progress,
            series=chosen.stack_id,
        )
    seg = pydicom.dcmread(out / "seg.dcm")
    sr = pydicom.dcmread(out / "sr.dcm")
    if store:
        client.store([seg, sr], study_uid)
    result = PacsResult(
        study_instance_uid=study_uid,
        series_instance_uid=chosen.series_instance_uid,
        seg_sop_instance_uid=str(seg.SOPInstanceUID),
        sr_sop_instance_uid=str(sr.SOPInstanceUID),
        stored=store,
        out_dir=out,
        report=report,
    )
    account = {**result.summary(), "pacs": client.config.describe(), "study_selection": selection.to_dict()}
    atomic_write_text(out / "pacs.json", json.dumps(account, indent=2) + "\n")
    return result
