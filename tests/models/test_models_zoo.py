"""The contract every registered network satisfies, checked for each entry of ``MODELS``.

A network added to the registry is tested here automatically (it only needs a small
configuration in conftest.SMALL_KWARGS and a parameter range in PARAM_RANGES).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from liverseg.errors import InputError
from liverseg.models import MODELS, build_model, count_parameters, default_kwargs

# Expected parameter count (millions) at the default configuration, 5 input slices, 3 classes.
PARAM_RANGES: dict[str, tuple[float, float]] = {
    "unet": (7.0, 31.0),
    "unet_resnet18": (12.0, 17.0),
    "unet_resnet34": (22.0, 27.0),
    "unet_resnet50": (30.0, 36.0),
    "segnet_vgg16": (27.0, 32.0),
    "mobileunet": (1.0, 3.0),
    "resunet": (6.0, 11.0),
    "encdec": (5.0, 31.0),
}


@pytest.mark.parametrize("name", list(MODELS))
class TestModelContract:
    """Input (N, C, H, W) float32 -> logits (N, K, H, W) for any H, W; trainable; deterministic in eval."""

    def _small(self, name: str, small_kwargs: dict, in_channels: int = 3, out_channels: int = 3):
        torch.manual_seed(0)
        return build_model(name, in_channels, out_channels, **small_kwargs[name])

    @pytest.mark.parametrize(("in_channels", "out_channels"), [(1, 2), (3, 3), (5, 3)])
    def test_forward_backward_at_odd_size(self, name, small_kwargs, in_channels, out_channels):
        model = self._small(name, small_kwargs, in_channels, out_channels).train()
        x = torch.rand(2, in_channels, 65, 47, requires_grad=True)
        logits = model(x)
        assert logits.shape == (2, out_channels, 65, 47)
        assert logits.dtype == torch.float32
        assert torch.isfinite(logits).all()
        target = torch.randint(0, out_channels, (2, 65, 47))
        F.cross_entropy(logits, target).backward()
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert not unused, f"parameters outside the graph: {unused[:5]}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        # The gradient reaches every input pixel's neighbourhood, including the cropped border.
        assert torch.isfinite(x.grad).all()
        assert x.grad[:, :, -1, :].abs().sum() > 0 and x.grad[:, :, :, -1].abs().sum() > 0

    def test_eval_is_deterministic_and_batch_independent(self, name, small_kwargs, randomize_norms):
        model = randomize_norms(self._small(name, small_kwargs)).eval()
        x = torch.rand(3, 3, 37, 50)
        with torch.inference_mode():
            first, second, alone = model(x), model(x), model(x[1:2])
        assert torch.equal(first, second)
        # Different batch sizes may take different conv kernels: float32 round-off only.
        scale = float(first.abs().max())
        torch.testing.assert_close(alone, first[1:2], rtol=1e-4, atol=1e-5 * max(1.0, scale))
        assert torch.isfinite(first).all()
        assert first.std() > 0  # not a constant map

    @pytest.mark.parametrize("size", [(1, 1), (5, 3), (32, 32), (33, 31), (96, 17)])
    def test_any_size_keeps_shape(self, name, small_kwargs, size):
        model = self._small(name, small_kwargs).eval()
        with torch.inference_mode():
            out = model(torch.rand(1, 3, *size))
        assert out.shape == (1, 3, *size)
        assert torch.isfinite(out).all()

    def test_padding_is_zero_at_bottom_right_and_cropped_back(self, name, small_kwargs, randomize_norms):
        model = randomize_norms(self._small(name, small_kwargs)).eval()
        s = model.stride
        x = torch.rand(1, 3, 2 * s - 5, s + 3)
        padded = F.pad(x, (0, 2 * s - x.shape[3], 0, 2 * s - x.shape[2]))
        with torch.inference_mode():
            torch.testing.assert_close(model(x), model(padded)[:, :, : x.shape[2], : x.shape[3]])

    def test_output_depends_on_input(self, name, small_kwargs, randomize_norms):
        model = randomize_norms(self._small(name, small_kwargs)).eval()
        x = torch.rand(1, 3, 40, 40)
        with torch.inference_mode():
            assert not torch.allclose(model(x), model(x.flip(-1)))

    def test_mixed_precision_forward_backward(self, name, small_kwargs):
        # autocast (bf16 on CPU here; fp16 on CUDA in training/inference) must not mix dtypes badly
        model = self._small(name, small_kwargs).train()
        x = torch.rand(2, 3, 40, 33)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        assert logits.shape == (2, 3, 40, 33)
        logits.float().square().mean().backward()
        assert torch.isfinite(logits.float()).all()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    def test_default_parameter_count(self, name):
        with torch.device("meta"):
            model = build_model(name, 5, 3)
        low, high = PARAM_RANGES[name]
        assert low * 1e6 <= count_parameters(model) <= high * 1e6
        with torch.device("meta"):
            explicit = build_model(name, 5, 3, **default_kwargs(name))
        assert count_parameters(explicit) == count_parameters(model)

    def test_wrong_input_shape_is_a_clear_error(self, name, small_kwargs):
        model = self._small(name, small_kwargs, in_channels=5).eval()
        with pytest.raises(
            InputError, match=r"expects a float tensor \(N, 5, H, W\), got shape \(1, 3, 16, 16\)"
        ):
            model(torch.rand(1, 3, 16, 16))
        with pytest.raises(InputError, match="got shape"):
            model(torch.rand(5, 16, 16))
