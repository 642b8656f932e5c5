"""``liverseg data export-corrections``: confirmed corrected label maps -> a prepared dataset.

Every problem report with status ``confirmed`` and an attached corrected label map becomes one
case ``corr<problem id>_<study id prefix>``: the study's CT (``images/``), the correction
(``labels/``), and an entry in ``dataset.json`` (docs/contracts.md "Prepared dataset"), written
with the data stage's own writer so the result loads with ``liverseg.data.dataset.load_dataset``.
Cases of one patient share a ``patient_id`` (so splits keep them together): ``patient_`` + a keyed
hash of the study's patient ID (:func:`liverseg.service.identity.pseudonym`, never the ID itself);
a study without a patient ID is its own patient (``study_<id>``).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from liverseg.data.cases import LoadedCase, SourceCase
from liverseg.data.dataset import write_dataset_json
from liverseg.data.prepare import prepare_case
from liverseg.errors import InputError, OutputError
from liverseg.service.db import Database, ProblemReport, Study
from liverseg.service.identity import pseudonym, service_key
from liverseg.service.storage import Storage
from liverseg.service.volumes import read_image_volume, read_label_volume
from liverseg.utils import code_version

__all__ = ["export_corrections"]

log = logging.getLogger(__name__)


def export_corrections(database: Database, data_dir: str | Path, out: str | Path) -> Path:
    """Write the confirmed corrections of the service in ``data_dir`` as a prepared dataset.

    Returns:
        the path of the written ``dataset.json``.

    Raises:
        InputError: no confirmed problem report has a corrected label map.
        OutputError: ``out`` already holds another (non-correction) prepared dataset.
    """

    storage, out = Storage(data_dir), Path(out)
    existing = out / "dataset.json"
    if existing.exists():
        try:
            fmt = json.loads(existing.read_text()).get("source_format")
        except (OSError, ValueError):
            fmt = None
        if fmt != "liverseg-corrections":  # never overwrite the manifest of another dataset
            raise OutputError(
                "holds a prepared dataset that is not an export of corrections; choose a new folder",
                out,
            )
    with database.session() as s:
        rows = s.execute(
            select(ProblemReport, Study)
            .join(Study, Study.id == ProblemReport.study_id)
            .where(ProblemReport.status == "confirmed", ProblemReport.correction_name.is_not(None))
            .order_by(ProblemReport.id)
        ).all()
        todo = [
            (pr.id, pr.category, pr.correction_name, st.id, st.input_name, st.model_version, st.patient_id)
            for pr, st in rows
        ]
    if not todo:
        raise InputError("no confirmed problem report with a corrected label map to export")
    cases = []
    key = service_key(data_dir)
    for problem_id, category, correction, study_id, input_name, model_version, patient in todo:
        image_path = storage.study_dir(study_id) / input_name
        image = read_image_volume(image_path)
        label = read_label_volume(storage.correction_file(str(correction)))
        image.require_same_grid(label, "corrected label map")
        case_id = f"corr{problem_id:05d}_{study_id[:8]}"
        source = SourceCase(
            case_id=case_id,
            patient_id=f"patient_{pseudonym(key, patient)[5:]}" if patient else f"study_{study_id}",
            source=image_path,
            source_format="liverseg-corrections",
            load=lambda image=image, label=label: LoadedCase(image, label, {}),
        )
        mapping = {
            "problem_report": problem_id,
            "category": category,
            "study": study_id,
            "model_version": model_version,
        }
        cases.append(prepare_case(out, source, LoadedCase(image, label, mapping)))
        log.info("exported problem %s (study %s) as %s", problem_id, study_id, case_id)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = write_dataset_json(
        out,
        name=out.resolve().name,
        source_format="liverseg-corrections",
        created=now,
        cases=cases,
        extra={"code_version": code_version()},
    )
    return Path(path)
