"""Administration: model registry, triage queue, monitoring, append-only audit, export-corrections."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from svc_fakes import make_ct, model_zip_bytes, upload

from liverseg.io import write_volume
from liverseg.service.db import AuditEvent, Job, ModelVersion
from liverseg.service.registry import sync_shipped_models


def _checkpoint_bytes(tmp_path, stage: str = "single") -> bytes:
    from liverseg.models import build_model
    from liverseg.training.checkpoint import save_checkpoint
    from liverseg.training.slabs import StageSpec

    classes = ("background", "liver") if stage == "liver" else ("background", "liver", "tumor")
    spec = StageSpec(
        stage=stage, classes=classes, context_slices=1, spacing_zyx=(None, 1.5, 1.5), window=(50.0, 400.0)
    )
    model = build_model("unet", 3, len(classes), features=4, depth=2)
    path = save_checkpoint(
        tmp_path / f"m_{stage}.pt",
        model,
        spec=spec,
        model_name="unet",
        model_kwargs={"features": 4, "depth": 2},
        config={"epochs": 1},
        dataset_fingerprint="abc",
        metrics={"dice_liver": 0.91, "dice_tumor": 0.55},
    )
    return path.read_bytes()


def _add_model(svc, name: str, status: str = "candidate") -> int:
    with svc.database.session() as s:
        m = ModelVersion(
            name=name,
            version="1.0",
            source="shipped",
            path=name,
            status=status,
            card="# card",
            metrics={"dice": 0.9},
            info={"kind": "cascade"},
        )
        s.add(m)
        s.flush()
        return m.id


RAW = {"Content-Type": "application/octet-stream"}


def test_only_a_complete_gated_cascade_with_a_card_can_be_activated(svc, ct_file, tmp_path):
    admin, alice = svc.client("admin"), svc.client("alice")
    first = _add_model(svc, "shipped-a", "active")
    # a one-stage checkpoint registers as a candidate that can never be activated
    r = admin.post("/api/admin/models?name=my-unet", content=_checkpoint_bytes(tmp_path), headers=RAW)
    assert r.status_code == 201, r.text
    single = r.json()
    assert single["kind"] == "single" and single["status"] == "candidate" and single["name"] == "my-unet"
    assert single["metrics"]["dice_liver"] == 0.91 and "unet" in single["card"] and "abc" in single["card"]
    assert any("not a complete cascade" in p for p in single["activation_problems"])
    # half of a cascade is refused at once, with what to do instead
    r = admin.post("/api/admin/models", content=_checkpoint_bytes(tmp_path, "tumor"), headers=RAW)
    assert (
        r.status_code == 422
        and "stage 2" in r.json()["detail"]
        and "zip of the model folder" in r.json()["detail"]
    )
    # garbage: one readable line, no server path, no unpickling trace; nothing left behind
    bad = admin.post("/api/admin/models", content=b"not a checkpoint" * 10, headers=RAW)
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert detail.startswith("the file is not a") and "/" not in detail and len(detail) < 200, detail
    assert sorted(p.name for p in (svc.config.data_dir / "models").iterdir()) == [
        f"{single_sha(svc, single)}.pt"
    ]
    # a complete cascade without its card: registered, not activatable
    r = admin.post(
        "/api/admin/models", content=model_zip_bytes(tmp_path / "nocard", "nocard", card=False), headers=RAW
    )
    assert r.status_code == 201 and r.json()["kind"] == "cascade"
    assert any("no model card" in p for p in r.json()["activation_problems"])
    # the real thing: zip of a model folder
    r = admin.post("/api/admin/models", content=model_zip_bytes(tmp_path / "cascade"), headers=RAW)
    assert r.status_code == 201, r.text
    cascade = r.json()
    assert (cascade["name"], cascade["version"], cascade["kind"]) == ("test-cascade", "2.0.0", "cascade")
    assert cascade["activation_problems"] == ["the validation gate has not been run on it"]
    url = f"/api/admin/models/{cascade['id']}/status"
    assert (
        "gate"
        in admin.post(url, json={"status": "active", "confirm": True, "reason": "better"}).json()["detail"]
    )
    r = admin.post(f"/api/admin/models/{cascade['id']}/gate")
    assert r.status_code == 200 and r.json()["gate"]["passed"] and r.json()["activation_problems"] == []
    # activation needs the confirmation and a reason
    for body in (
        {"status": "active"},
        {"status": "active", "confirm": True},
        {"status": "active", "reason": "x y z"},
    ):
        assert admin.post(url, json=body).status_code == 422
    s1 = upload(alice, ct_file).json()
    assert (s1["model_name"], s1["model_version"]) == ("shipped-a", "1.0")
    r = admin.post(
        url, json={"status": "active", "confirm": True, "reason": "passes the gate, new training data"}
    )
    assert r.status_code == 200 and r.json()["status"] == "active"
    models = {m["id"]: m["status"] for m in admin.get("/api/admin/models").json()}
    assert (
        models[first] == "retired"
        and models[cascade["id"]] == "active"
        and models[single["id"]] == "candidate"
    )
    assert (
        admin.post(
            f"/api/admin/models/{single['id']}/status",
            json={"status": "active", "confirm": True, "reason": "try"},
        ).status_code
        == 422
    )
    s2 = upload(alice, ct_file).json()
    assert (s2["model_name"], s2["model_version"]) == ("test-cascade", "2.0.0")
    svc.run_jobs()
    with svc.database.session() as s:
        job = s.scalar(select(Job).where(Job.study_id == s2["id"]))
        assert job.model_id == cascade["id"]
    report = alice.get(f"/api/studies/{s2['id']}/report").json()
    assert (svc.config.data_dir.resolve() / "models") in Path(
        report["model"]["ref"]
    ).parents  # the registered folder ran
    assert admin.post(f"/api/admin/models/{first}/status", json={"status": "bogus"}).status_code == 422
    with svc.database.session() as s:
        events = {e.action: e for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))}
    assert events["model_status"].detail["reason"] == "passes the gate, new training data"
    assert events["model_gate"].detail["passed"] is True and "model_register" in events


def single_sha(svc, model: dict) -> str:
    with svc.database.session() as s:
        return s.get(ModelVersion, model["id"]).sha256


def test_a_failed_gate_blocks_activation(svc, tmp_path):
    admin = svc.client("admin")
    r = admin.post("/api/admin/models", content=model_zip_bytes(tmp_path / "m", "failing-model"), headers=RAW)
    mid = r.json()["id"]
    gate = admin.post(f"/api/admin/models/{mid}/gate").json()
    assert gate["gate"]["passed"] is False
    assert gate["activation_problems"] == [
        "the validation gate failed: liver Dice 0.410 on the sample (at least 0.85 required)"
    ]
    r = admin.post(
        f"/api/admin/models/{mid}/status", json={"status": "active", "confirm": True, "reason": "please"}
    )
    assert r.status_code == 422 and "validation gate failed" in r.json()["detail"]


def test_database_allows_one_active_model(svc):
    _add_model(svc, "a", "active")
    with pytest.raises(IntegrityError):
        _add_model(svc, "b", "active")


def test_shipped_models_are_listed(svc, monkeypatch):
    shipped = [
        {
            "name": "liver-cascade",
            "version": "1.0.0",
            "default": True,
            "card": "# Liver cascade",
            "validation": {"dice_liver": 0.95},
            "stages": {"liver": "stage1.pt", "tumor": "stage2.pt"},
        }
    ]
    monkeypatch.setattr("liverseg.catalog.list_shipped_models", lambda: shipped)
    sync_shipped_models(svc.database)
    sync_shipped_models(svc.database)  # idempotent
    models = svc.client("admin").get("/api/admin/models").json()
    assert [(m["name"], m["status"], m["source"]) for m in models] == [("liver-cascade", "active", "shipped")]
    assert models[0]["card"] == "# Liver cascade" and models[0]["metrics"] == {"dice_liver": 0.95}


def test_shipped_versions_keep_their_own_path(svc, monkeypatch):
    def shipped(version: str, default: bool) -> dict:
        return {"name": "liver-cascade", "version": version, "default": default, "card": "", "stages": {}}

    monkeypatch.setattr("liverseg.catalog.list_shipped_models", lambda: [shipped("0.1.0", True)])
    sync_shipped_models(svc.database)
    with svc.database.session() as s:  # a registry written before versioned names: bare name
        s.scalar(select(ModelVersion).where(ModelVersion.version == "0.1.0")).path = "liver-cascade"
    monkeypatch.setattr(
        "liverseg.catalog.list_shipped_models", lambda: [shipped("0.1.0", False), shipped("0.2.0", True)]
    )
    sync_shipped_models(svc.database)
    with svc.database.session() as s:
        rows = {r.version: (r.path, r.status) for r in s.scalars(select(ModelVersion))}
    # each version resolves to itself; the already active 0.1.0 stays active until an admin switches
    assert rows == {
        "0.1.0": ("liver-cascade@0.1.0", "active"),
        "0.2.0": ("liver-cascade@0.2.0", "candidate"),
    }


def test_triage_queue_monitoring_and_export(svc, done_study, tmp_path):
    alice, admin = svc.client("alice"), svc.client("admin")
    image = make_ct()
    corrected = np.zeros(image.shape, np.uint8)
    corrected[5:15, 10:30, 10:30] = 1
    write_volume(image.with_array(corrected), tmp_path / "fix.nii.gz")
    r = alice.post(
        f"/api/studies/{done_study}/problems",
        data={"category": "liver_boundary", "comment": "too small"},
        files={"correction": ("fix.nii.gz", (tmp_path / "fix.nii.gz").read_bytes())},
    )
    pid = r.json()["id"]
    alice.post(f"/api/studies/{done_study}/problems", data={"category": "other"})
    queue = admin.get("/api/admin/problems", params={"status": "open"}).json()
    assert queue[0]["id"] == pid and queue[0]["reporter"] == "alice"
    assert admin.get(f"/api/admin/problems/{pid}/correction").status_code == 200
    r = admin.patch(f"/api/admin/problems/{pid}", json={"status": "confirmed", "note": "agreed"})
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert admin.patch(f"/api/admin/problems/{pid}", json={"status": "maybe"}).status_code == 422
    assert [p["id"] for p in admin.get("/api/admin/problems", params={"status": "confirmed"}).json()] == [pid]
    assert alice.get(f"/api/studies/{done_study}/problems").json()[0]["status"] == "confirmed"
    assert "problems-table" in admin.get("/admin/problems").text

    # monitoring: one finished study, flagged; one queued job
    assert upload(alice, tmp_path / "ct.nii.gz").status_code == 202
    m = admin.get("/api/admin/monitoring").json()
    (stats,) = m["per_model"].values()
    assert stats["studies_done"] == 1 and stats["flagged"] == 1 and stats["flagged_share"] == 1.0
    assert {"segment", "total", "viewer_cache"} <= set(stats["latency_s"])
    assert stats["latency_s"]["total"]["n"] == 1
    assert m["jobs_per_day"][-1]["done"] == 1 and m["queue_length"] == 1
    assert "queue-length" in admin.get("/admin/monitoring").text

    # export-corrections through the data CLI's subcommand
    from liverseg.cli import data as data_cli
    from liverseg.data.dataset import load_dataset

    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers())
    out = tmp_path / "corrections"
    args = parser.parse_args(
        [
            "data",
            "export-corrections",
            str(out),
            "--data-dir",
            str(svc.config.data_dir),
            "--db",
            svc.config.database_url,
        ]
    )
    assert args.func(args) == 0
    ds = load_dataset(out)
    assert len(ds.cases) == 1 and ds.cases[0].id.startswith(f"corr{pid:05d}_")
    img, lab = ds.load_case(ds.cases[0].id)
    assert img.same_grid(image) and np.array_equal(lab.array, corrected)
    assert np.allclose(img.array, image.array)


def test_export_without_confirmed_corrections_fails_clearly(svc, tmp_path):
    from liverseg.errors import InputError
    from liverseg.service.export import export_corrections

    with pytest.raises(InputError, match="no confirmed problem report"):
        export_corrections(svc.database, svc.config.data_dir, tmp_path / "out")


def test_audit_log_is_append_only(svc):
    admin = svc.client("admin")
    rows = admin.get("/api/admin/audit").json()
    assert rows[0]["action"] == "login" and rows[0]["user"] == "admin"
    assert "audit-table" in admin.get("/admin/audit").text
    with pytest.raises(PermissionError), svc.database.session() as s:
        ev = s.scalar(select(AuditEvent))
        ev.action = "tampered"
        s.flush()
    with pytest.raises(PermissionError), svc.database.session() as s:
        s.delete(s.scalar(select(AuditEvent)))
        s.flush()
    for stmt in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), svc.database.engine.begin() as conn:
            conn.execute(text(stmt))
    with pytest.raises(DBAPIError, match="append-only"), svc.database.session() as s:
        s.execute(update(AuditEvent).values(action="x"))
    with svc.database.session() as s:
        assert "x" not in {e.action for e in s.scalars(select(AuditEvent))}


def test_admin_sees_all_studies(svc, done_study):
    admin = svc.client("admin")
    assert admin.get(f"/api/studies/{done_study}/viewer").status_code == 200
    listed = admin.get("/api/studies").json()
    assert listed[0]["owner"] == "alice"
    assert "models-table" in admin.get("/admin/models").text


def test_export_corrections_never_overwrites_another_dataset(svc, tmp_path):
    import json

    from liverseg.errors import OutputError
    from liverseg.service.export import export_corrections

    out = tmp_path / "prepared"
    out.mkdir()
    manifest = {"format": "liverseg-prepared", "source_format": "ircadb", "cases": [{"id": "ircadb_01"}]}
    (out / "dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(OutputError, match="not an export of corrections"):
        export_corrections(svc.database, svc.config.data_dir, out)
    assert json.loads((out / "dataset.json").read_text()) == manifest
