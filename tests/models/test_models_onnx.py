"""ONNX export (opset 17, dynamic N/H/W) reproduces the torch logits in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from liverseg.errors import OutputError
from liverseg.models import MODELS, build_model, export_onnx


def _compare(model: torch.nn.Module, path, shapes, *, max_mismatch: float = 0.0) -> None:
    """Run ``path`` in ONNX Runtime (default, fully optimised session) and compare with ``model``.

    ``max_mismatch``: fraction of logits allowed outside the tolerance. SegNet needs a little: its
    max-pool argmax flips on near-ties under float round-off (ONNX Runtime folds batch norm into
    the convolutions), moving a value to a neighbouring pixel -- torch itself does the same when the
    input is perturbed by 1e-6.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("image", "logits")
    model.eval()
    for shape in shapes:
        x = torch.rand(*shape)
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        assert got.shape == expected.shape == (shape[0], model.out_channels, *shape[2:])
        scale = max(1.0, float(np.abs(expected).max()))
        close = np.isclose(got, expected, rtol=1e-4, atol=1e-5 * scale)
        if max_mismatch == 0.0:
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * scale)
        assert 1.0 - close.mean() <= max_mismatch


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_exports_with_dynamic_size(name, small_kwargs, randomize_norms, tmp_path):
    torch.manual_seed(0)
    model = randomize_norms(build_model(name, 3, 3, **small_kwargs[name]))
    path = export_onnx(model, tmp_path / f"{name}.onnx", example_size=(64, 64))
    assert model.training  # the caller's mode is restored
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "", "height", "width"] and dims[1].dim_value == 3
    # Sizes other than the tracing size, none a multiple of the stride: padding must be in the graph.
    _compare(
        model, path, [(1, 3, 65, 47), (3, 3, 33, 70)], max_mismatch=0.01 if name == "segnet_vgg16" else 0.0
    )


@pytest.mark.parametrize(("name", "kwargs"), [("mobileunet", {}), ("unet", {"features": 16})])
def test_shipped_candidates_export_at_5_slices(name, kwargs, randomize_norms, tmp_path):
    torch.manual_seed(1)
    model = randomize_norms(build_model(name, 5, 3, **kwargs), seed=1)
    path = export_onnx(model, tmp_path / "model.onnx", example_size=(96, 80))
    _compare(model, path, [(2, 5, 129, 101)])


def test_export_failure_leaves_no_file(tmp_path):
    target = tmp_path / "blocked" / "model.onnx"
    (tmp_path / "blocked").write_text("a file where a folder should be")
    with pytest.raises(OutputError):
        export_onnx(build_model("mobileunet", 1, 2, width_mult=0.25), target)
    assert not target.exists()
