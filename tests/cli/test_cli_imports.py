"""``liverseg --help`` stays fast: building the parser imports no heavy package (ARCHITECTURE.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from liverseg.cli.data import LAYOUT_NAMES
from liverseg.cli.synth import PHANTOM_SHAPE, PHANTOM_SPACING
from liverseg.data.layouts import LAYOUTS
from liverseg.synth.phantom import DEFAULT_SHAPE, DEFAULT_SPACING

#: what the CLI command modules import only inside their commands (rule (a) of ARCHITECTURE.md)
_HEAVY = (
    "torch",
    "monai",
    "onnxruntime",
    "SimpleITK",
    "pydicom",
    "highdicom",
    "scipy",
    "fastapi",
    "sqlalchemy",
)


def test_help_imports_no_heavy_package() -> None:
    code = (
        "import sys, json, contextlib, io\n"
        "from liverseg.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(res.stdout.strip().splitlines()[-1]))
    assert "liverseg.cli.segment" in loaded  # the parser was built
    heavy = sorted(m for m in loaded if m.split(".")[0] in _HEAVY)
    assert heavy == []
    ours = sorted(m for m in loaded if m.startswith("liverseg.") and not m.startswith("liverseg.cli"))
    assert not any(m.startswith(("liverseg.io", "liverseg.data", "liverseg.inference")) for m in ours), ours


def test_spelled_out_cli_constants_match_the_library() -> None:
    assert list(LAYOUT_NAMES) == list(LAYOUTS)
    assert tuple(PHANTOM_SHAPE) == tuple(DEFAULT_SHAPE)
    assert tuple(PHANTOM_SPACING) == tuple(DEFAULT_SPACING)


def test_torch_free_packages_import_no_torch() -> None:
    """io, data, preprocessing, metrics, reporting, augment and synth never import torch or MONAI."""
    pkgs = ["io", "data", "preprocessing", "metrics", "reporting", "augment", "synth"]
    code = (
        "import sys, json\n"
        + "".join(f"import liverseg.{p}\n" for p in pkgs)
        + "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'monai'))))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(res.stdout.strip().splitlines()[-1]) == []
