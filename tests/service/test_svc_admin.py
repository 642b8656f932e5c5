"""Administration: model registry, triage queue, monitoring, append-only audit, export-corrections."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from svc_fakes import make_ct, upload

from liverseg.io import write_volume
from liverseg.service.db import AuditEvent, Job, ModelVersion
from liverseg.service.registry import sync_shipped_models


def _checkpoint_bytes(tmp_path) -> bytes:
    pytest.importorskip("liverseg.models")
    from liverseg.models import build_model
    from liverseg.training.checkpoint import save_checkpoint
    from liverseg.training.slabs import StageSpec

    spec = StageSpec(
        stage="single",
        classes=("background", "liver", "tumor"),
        context_slices=1,
        spacing_zyx=(None, 1.5, 1.5),
        window=(50.0, 400.0),
    )
    model = build_model("unet", 3, 3, features=4, depth=2)
    path = save_checkpoint(
        tmp_path / "m.pt",
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
            info={},
        )
        s.add(m)
        s.flush()
        return m.id


def test_register_activate_and_record_model(svc, ct_file, tmp_path):
    admin, alice = svc.client("admin"), svc.client("alice")
    first = _add_model(svc, "shipped-a", "active")
    r = admin.post(
        "/api/admin/models?name=my-unet",
        content=_checkpoint_bytes(tmp_path),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 201, r.text
    reg = r.json()
    assert reg["status"] == "candidate" and reg["source"] == "registered" and reg["name"] == "my-unet"
    assert reg["metrics"]["dice_liver"] == 0.91 and "unet" in reg["card"] and "abc" in reg["card"]
    # garbage is refused and leaves nothing behind
    bad = admin.post(
        "/api/admin/models",
        content=b"not a checkpoint" * 10,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert bad.status_code == 422
    assert len(list((svc.config.data_dir / "models").iterdir())) == 1
    # a study queued now records the active model; activating another retires the first
    s1 = upload(alice, ct_file).json()
    assert (s1["model_name"], s1["model_version"]) == ("shipped-a", "1.0")
    r = admin.post(f"/api/admin/models/{reg['id']}/status", json={"status": "active"})
    assert r.status_code == 200 and r.json()["status"] == "active"
    models = {m["id"]: m["status"] for m in admin.get("/api/admin/models").json()}
    assert models == {first: "retired", reg["id"]: "active"}
    s2 = upload(alice, ct_file).json()
    assert (s2["model_name"], s2["model_version"]) == ("my-unet", reg["version"])
    svc.run_jobs()
    with svc.database.session() as s:
        job = s.scalar(select(Job).where(Job.study_id == s2["id"]))
        assert job.model_id == reg["id"]
    report = alice.get(f"/api/studies/{s2['id']}/report").json()
    assert report["model"]["ref"].endswith(".pt")  # the job ran the registered checkpoint
    assert admin.post(f"/api/admin/models/{first}/status", json={"status": "bogus"}).status_code == 422
    with svc.database.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent))]
    assert "model_register" in actions and "model_status" in actions


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
            "stages": {},
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
