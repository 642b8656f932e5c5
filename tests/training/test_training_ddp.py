"""DistributedDataParallel smoke test: torchrun, 2 CPU processes, gloo backend, a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

RUNNER = """
import json, os, sys
import torch
torch.set_num_threads(1)
from liverseg.utils import set_progress_enabled
set_progress_enabled(False)
from liverseg.training.config_io import load_config
from liverseg.training.trainer import train
summary = train(load_config(sys.argv[1]), sys.argv[2])
with open(sys.argv[3] + f".rank{os.environ['RANK']}", "w") as fh:
    json.dump({"steps": summary["steps"], "best": summary["best_metric"],
               "world": summary["hardware"]["world_size"]}, fh)
"""


@pytest.mark.slow
def test_ddp_two_processes_gloo(phantom_dir: Path, tmp_path: Path, tiny_config: Any) -> None:
    cfg = tiny_config(
        phantom_dir,
        tmp_path / "cache",
        train={"epochs": 2, "steps_per_epoch": 2, "batch_size": 4, "budget_minutes": 30.0},
    )
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tmp_path / "runner.py"),
        str(tmp_path / "cfg.yaml"),
        str(tmp_path / "run"),
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out.rank{r}").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # same steps and the same gathered validation score on both ranks
    assert ranks[0]["world"] == 2 and ranks[0]["steps"] == 4
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"best.pt", "last.pt", "config.yaml", "log.csv", "summary.json"}
    assert len((run / "log.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs, written once
    assert not list(run.glob(".*"))  # no temporary files left by a second writer
