"""The validation gate a model must pass before it can be activated.

The model segments the bundled sample (CHAOS CT case 3 derivative, a reference liver label; see
``sample/ATTRIBUTION.md``) through the same :func:`liverseg.inference.run_segment` the jobs use,
on the CPU, and must find the liver with a Dice of at least :data:`MIN_LIVER_DICE`. This is a
sanity check that the files form a working model on this installation (right stages, right
preprocessing, plausible output), not a measure of accuracy: the model card's validation is.
The sample was part of the shipped model's training data, so the shipped model passes easily;
any usable liver model reaches this threshold on a clean venous-phase CT.

The web application runs the gate in a separate process (``python -m liverseg.service.gate
--model REF --out result.json``) so a model's memory and any crash stay out of the web process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from liverseg.errors import LiversegError
from liverseg.inference import SegmentOptions, run_segment
from liverseg.io import SAMPLE_IMAGE, SAMPLE_LABEL, read_volume
from liverseg.metrics import dice

__all__ = ["MIN_LIVER_DICE", "TIMEOUT_S", "run_gate", "run_gate_subprocess"]

log = logging.getLogger(__name__)
MIN_LIVER_DICE = 0.85
TIMEOUT_S = 900.0


def run_gate(model_ref: str, work_dir: str | Path) -> dict[str, Any]:
    """Segment the bundled sample with ``model_ref`` and score the liver (see the module docstring).

    Returns ``{"passed", "liver_dice", "threshold", "liver_volume_ml", "lesion_count", "seconds",
    "message"}``; a model that cannot run gives ``passed: False`` with the reason.
    """

    t0 = time.perf_counter()
    out = Path(work_dir) / "gate_labels.nii.gz"
    base = {"threshold": MIN_LIVER_DICE, "sample": SAMPLE_IMAGE.name}
    try:
        report = run_segment(SAMPLE_IMAGE, out, options=SegmentOptions(model=model_ref, device="cpu"))
        pred = read_volume(out, kind="label")
    except LiversegError as exc:
        return {
            **base,
            "passed": False,
            "liver_dice": None,
            "seconds": round(time.perf_counter() - t0, 1),
            "message": f"the model could not segment the sample: {exc}",
        }
    ref = read_volume(SAMPLE_LABEL, kind="label")
    score = float(dice(pred.array >= 1, ref.array >= 1))
    passed = bool(report.get("liver_found")) and score >= MIN_LIVER_DICE
    message = (
        f"liver Dice {score:.3f} on the sample (at least {MIN_LIVER_DICE} required)"
        if report.get("liver_found")
        else "no liver found in the sample"
    )
    return {
        **base,
        "passed": passed,
        "liver_dice": round(score, 4),
        "liver_volume_ml": report.get("liver_volume_ml"),
        "lesion_count": report.get("lesion_count"),
        "seconds": round(time.perf_counter() - t0, 1),
        "model": {k: report.get("model", {}).get(k) for k in ("name", "version", "backend")},
        "message": message,
    }


async def run_gate_subprocess(model_ref: str, scratch: Path, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """:func:`run_gate` in a child process (``python -m liverseg.service.gate``), awaited without
    blocking the web application; a crash or a timeout is a failed gate with the reason."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        result_path = Path(tmp) / "gate.json"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "liverseg.service.gate", "--model", model_ref, "--work-dir", tmp,
            "--out", str(result_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            return {
                "passed": False,
                "threshold": MIN_LIVER_DICE,
                "message": f"the gate ran longer than {timeout_s:.0f} s",
            }
        if proc.returncode != 0 or not result_path.exists():
            last = (err or b"").decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            return {
                "passed": False,
                "threshold": MIN_LIVER_DICE,
                "message": f"the gate process failed (exit {proc.returncode}): {last[0][:300]}",
            }
        return json.loads(result_path.read_text(encoding="utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m liverseg.service.gate", description=__doc__)
    parser.add_argument("--model", required=True, help="model reference (shipped name, folder, checkpoint)")
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="result JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="gate %(levelname)s: %(message)s")
    result = run_gate(args.model, args.work_dir)
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
