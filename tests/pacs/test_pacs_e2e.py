"""End to end on a real Orthanc (DICOMweb): push a CT, `liverseg pacs`, read SEG + SR back.

The segmentation is the real pipeline (``run_segment`` with the shipped model) on a 24-slice
slab of the bundled sample, so each run takes seconds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import highdicom as hd
import numpy as np
import pydicom
import pytest
import requests

from _helpers_dicom import dciodvfy_errors
from liverseg.inference import SegmentOptions
from liverseg.io import read_dicom_seg, read_volume
from liverseg.pacs import Ledger, watch

from .conftest import client_for

pytestmark = pytest.mark.pacs


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liverseg", *args], capture_output=True, text=True, timeout=600, env=env
    )


def _series_by_modality(client, study: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for s in client.find_series(study):
        out.setdefault(s["Modality"], []).append(s)
    return out


def test_segment_a_study_and_read_seg_and_sr_back_from_orthanc(orthanc, make_study, tmp_path):
    st = make_study()
    out = tmp_path / "out"
    res = _cli("pacs", "segment", "--study", st["study"], "-o", str(out), "--json", env=orthanc.env())
    assert res.returncode == 0, res.stderr
    assert orthanc.password not in res.stdout + res.stderr  # credentials never printed
    summary = json.loads(res.stdout)
    assert summary["series_instance_uid"] == st["ct_series"] and summary["stored"] is True
    # the study-level choice: the CT series, localizer and dose report left out with reasons
    account = json.loads((out / "pacs.json").read_text())
    reasons = " ".join(s["reason"] for s in account["study_selection"]["skipped"])
    assert "localizer" in reasons and "structured report" in reasons

    client = client_for(orthanc)
    series = _series_by_modality(client, st["study"])
    assert len(series["SEG"]) == 1 and len(series["SR"]) == 2  # ours and the dose report
    seg_files = client.retrieve_series(st["study"], series["SEG"][0]["SeriesInstanceUID"], tmp_path / "seg")
    (seg_file,) = seg_files
    seg = pydicom.dcmread(seg_file)
    assert seg.SOPInstanceUID == summary["seg_sop_instance_uid"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == st["ct_series"]
    ours = next(s for s in series["SR"] if (s["SeriesDescription"] or "").startswith("liverseg"))
    (sr_file,) = client.retrieve_series(st["study"], ours["SeriesInstanceUID"], tmp_path / "sr")
    sr = hd.sr.Comprehensive3DSR.from_dataset(pydicom.dcmread(sr_file))
    assert sr.SOPInstanceUID == summary["sr_sop_instance_uid"] and sr.StudyInstanceUID == st["study"]
    evidence_series = {
        s.SeriesInstanceUID
        for e in sr.CurrentRequestedProcedureEvidenceSequence
        for s in e.ReferencedSeriesSequence
    }
    assert evidence_series == {st["ct_series"], seg.SeriesInstanceUID}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert group.referenced_segment.source_series_for_segmentation.value == st["ct_series"]
    assert len(sr.content.get_volumetric_roi_measurement_groups()) == summary["lesion_count"]
    # what came back from the PACS is what was computed, and it passes dciodvfy
    ct = read_volume(st["ct_folder"])
    labels = read_volume(out / "labels.nii.gz", kind="label")
    assert labels.same_grid(ct, atol=1e-4) and labels.array.any()
    np.testing.assert_array_equal(read_dicom_seg(seg_file, reference=ct).array, labels.array)
    assert dciodvfy_errors(seg_file) == []
    assert dciodvfy_errors(sr_file) == []


def test_watch_once_processes_each_new_series_once_and_rejects_what_cannot_be_segmented(
    orthanc, make_study, tmp_path
):
    st = make_study(localizer=False, dose_report=False)
    scout_only = make_study(ct=False, dose_report=False)  # a CT "series" of two localizers
    ledger = tmp_path / "ledger.json"
    args = ["pacs", "watch", "--once", "--state", str(ledger), "-o", str(tmp_path / "w"), "--device", "cpu"]
    first = _cli(*args, "--filter", f"PatientID={st['patient']}", env=orthanc.env())
    assert first.returncode == 0, first.stderr
    assert "1 series done, 0 failed, 0 rejected" in first.stdout
    entry = json.loads(ledger.read_text())["series"][st["ct_series"]]
    assert entry["status"] == "done" and entry["attempts"] == 1 and entry["stored"] is True
    again = _cli(*args, "--filter", f"PatientID={st['patient']}", env=orthanc.env())
    assert "0 series done, 0 failed, 0 rejected" in again.stdout, again.stderr
    client = client_for(orthanc)
    kinds = _series_by_modality(client, st["study"])
    assert len(kinds["SEG"]) == 1 and len(kinds["SR"]) == 1  # each series once
    rejected = _cli(*args, "--filter", f"PatientID={scout_only['patient']}", env=orthanc.env())
    assert "0 series done, 0 failed, 1 rejected" in rejected.stdout, rejected.stderr
    (scout,) = [e for e in json.loads(ledger.read_text())["series"].values() if e["status"] == "rejected"]
    assert "localizer" in scout["error"]


def test_watch_records_failures_and_retries_a_bounded_number_of_times(orthanc, make_study, tmp_path):
    st = make_study(localizer=False, dose_report=False)
    client = client_for(orthanc)
    bad = SegmentOptions(model="no-such-model", device="cpu")  # fails after pulling the series
    kw = {"ledger_path": tmp_path / "l.json", "out_root": tmp_path / "o", "once": True, "max_attempts": 2}
    kw["filters"] = {"PatientID": st["patient"]}
    for attempt in (1, 2):
        summary = watch(client, options=bad, **kw)
        assert summary.failed == 1
        entry = Ledger(kw["ledger_path"]).get(st["ct_series"])
        assert (
            entry["status"] == "failed" and entry["attempts"] == attempt and "no-such-model" in entry["error"]
        )
    assert watch(client, options=bad, **kw).processed == 0  # attempts used up: left alone
    assert "SEG" not in _series_by_modality(client, st["study"])


def test_find_studies_and_series(orthanc, make_study, monkeypatch, capsys):
    from liverseg.cli.main import main

    st = make_study(localizer=False)
    for key, value in orthanc.env().items():
        if key.startswith("LIVERSEG_PACS_"):
            monkeypatch.setenv(key, value)
    assert main(["pacs", "find", "--patient-id", st["patient"], "--json"]) == 0
    (study,) = json.loads(capsys.readouterr().out)
    assert study["StudyInstanceUID"] == st["study"] and study["PatientID"] == st["patient"]
    assert main(["pacs", "find", "--study", st["study"]]) == 0
    table = capsys.readouterr().out
    assert st["ct_series"] in table and "SR" in table


def test_orthanc_refuses_other_addresses_than_the_loopback(orthanc):
    """Orthanc 1.10 cannot bind to the loopback only; RemoteAccessAllowed=false refuses the rest."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            address = s.getsockname()[0]
    except OSError:
        pytest.skip("no non-loopback IPv4 address on this machine")
    if address.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this machine")
    port = orthanc.root.rsplit(":", 1)[1]
    answer = requests.get(
        f"http://{address}:{port}/system", auth=(orthanc.username, orthanc.password), timeout=10
    )
    assert answer.status_code in (401, 403)
    assert orthanc.get("/system").status_code == 200


def test_continuous_watch_waits_one_poll_for_a_series_to_settle_and_locks_its_ledger(
    orthanc, make_study, tmp_path
):
    from liverseg.errors import ConfigError

    st = make_study(localizer=False, dose_report=False)
    client = client_for(orthanc)
    bad = SegmentOptions(model="no-such-model", device="cpu")  # fast outcome: we count attempts only
    kw = {
        "ledger_path": tmp_path / "l.json",
        "out_root": tmp_path / "o",
        "filters": {"PatientID": st["patient"]},
        "interval_s": 0.05,
        "options": bad,
    }
    assert watch(client, max_polls=1, **kw).processed == 0  # first sight: the series may still grow
    assert Ledger(kw["ledger_path"]).get(st["ct_series"]) is None
    summary = watch(client, max_polls=2, **kw)  # same instance count on the second poll: taken
    assert summary.polls == 2 and summary.failed == 1
    with Ledger(kw["ledger_path"]).locked(), pytest.raises(ConfigError, match="another liverseg pacs watch"):
        watch(client, once=True, **kw)
