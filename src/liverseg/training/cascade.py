"""Two-stage cascade training (Christ et al. 2017): stage 1 (liver, low resolution, whole slices)
then stage 2 (liver + tumor inside the liver box, full in-plane resolution)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from liverseg.training.config import CascadeConfig
from liverseg.training.trainer import train
from liverseg.utils import atomic_write_text

__all__ = ["train_cascade"]

log = logging.getLogger(__name__)


def train_cascade(
    cascade: CascadeConfig, run_dir: str | Path, *, resume: bool = False, half_weights: bool = False
) -> dict[str, Any]:
    """Train ``stage1`` into ``run_dir/stage1`` and ``stage2`` into ``run_dir/stage2``.

    With ``resume``, a stage whose ``summary.json`` exists is skipped, an interrupted one resumes
    from its ``last.pt`` and a stage not yet started trains from scratch.
    """
    run_dir = Path(run_dir)
    out: dict[str, Any] = {}
    for key, cfg in (("stage1", cascade.stage1), ("stage2", cascade.stage2)):
        stage_dir = run_dir / key
        if resume and (stage_dir / "summary.json").is_file():
            log.info("%s already finished: %s", key, stage_dir)
            out[key] = json.loads((stage_dir / "summary.json").read_text(encoding="utf-8"))
            continue
        log.info("cascade %s (%s stage): %s", key, cfg.stage.stage, cfg.name)
        out[key] = train(
            cfg, stage_dir, resume=resume and (stage_dir / "last.pt").is_file(), half_weights=half_weights
        )
    atomic_write_text(run_dir / "summary.json", json.dumps(out, indent=2, default=str) + "\n")
    return out
