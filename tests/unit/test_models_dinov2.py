"""DINOv2 patch encoder (docs/method.md §1.2) on tiny random weights."""

from __future__ import annotations

import warnings

import pytest
import torch

import fiftyone_ntt.models as models
from fiftyone_ntt.models import PatchEncoder, tiny_encoder
from fiftyone_ntt.models.dinov2 import IMAGENET_MEAN, IMAGENET_STD

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def encoder():
    return tiny_encoder(seed=0)


@pytest.fixture(scope="module")
def encoder_reg():
    return tiny_encoder(seed=0, registers=4)


@pytest.fixture(scope="module")
def pixels():
    generator = torch.Generator().manual_seed(123)
    # Slightly outside [0, 1], as bicubic resizing produces (§1.3).
    return torch.rand((2, 3, 518, 518), generator=generator) * 1.1 - 0.05


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def test_shapes_dtype_and_protocol(encoder, pixels):
    out = encoder.encode(pixels)
    assert isinstance(encoder, PatchEncoder)
    assert out.shape == (2, 37, 37, 32)
    assert out.dtype == torch.float32
    assert encoder.patch_size == 14 and encoder.feature_dim == 32
    assert encoder.identity == {
        "family": "dinov2",
        "arch": "vit_tiny_random",
        "feature_dim": 32,
        "patch_size": 14,
        "registers": 0,
        "source": "tiny-random-dinov2(seed=0, registers=0)",
        "precision": "float32",
        "identity_version": 1,
    }


def test_equals_manual_hf_forward_with_imagenet_normalisation(encoder, pixels):
    with torch.no_grad():
        hidden = encoder.model(pixel_values=_normalise(pixels)).last_hidden_state
        raw = encoder.model(pixel_values=pixels).last_hidden_state
    expected = hidden[:, 1:].reshape(2, 37, 37, 32)
    out = encoder.encode(pixels)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # Without normalisation the features would be clearly different.
    assert (out - raw[:, 1:].reshape(2, 37, 37, 32)).abs().max() > 1e-2


def test_features_are_post_layernorm_and_not_l2_normalised(encoder, pixels):
    out = encoder.encode(pixels)
    norms = out.norm(dim=-1)
    assert not torch.allclose(norms, torch.ones_like(norms), atol=1e-3)
    # Post-LN with weight 1 / bias 0 (tiny init): per-token mean ~0, std ~1.
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 37, 37), atol=1e-4, rtol=0)


def test_registers_are_dropped(encoder_reg, pixels):
    assert encoder_reg.registers == 4
    assert encoder_reg.identity["registers"] == 4
    with torch.no_grad():
        hidden = encoder_reg.model(pixel_values=_normalise(pixels)).last_hidden_state
    assert hidden.shape[1] == 1 + 4 + 37 * 37
    out = encoder_reg.encode(pixels)
    torch.testing.assert_close(out, hidden[:, 5:].reshape(2, 37, 37, 32), rtol=1e-5, atol=1e-5)
    # Dropping only CLS would shift every patch by 4 tokens: clearly different.
    assert (out - hidden[:, 1 : 1 + 37 * 37].reshape(2, 37, 37, 32)).abs().max() > 1e-2


@pytest.mark.parametrize("registers", [0, 4])
def test_positional_embedding_not_interpolated_at_518(registers):
    enc = tiny_encoder(seed=1, registers=registers)
    embeddings = enc.model.embeddings
    tokens = torch.zeros(1, 1 + 37 * 37, 32)
    # docs/method.md §1.2: the 37×37 embedding is used as is at 518² (no bicubic resampling) ...
    assert embeddings.interpolate_pos_encoding(tokens, 518, 518) is embeddings.position_embeddings
    # ... while another size does get resampled.
    small = torch.zeros(1, 1 + 16 * 16, 32)
    resampled = embeddings.interpolate_pos_encoding(small, 224, 224)
    assert resampled.shape == (1, 1 + 16 * 16, 32)


def test_deterministic_and_seeded(encoder, pixels):
    first = encoder.encode(pixels)
    again = encoder.encode(pixels)
    assert torch.equal(first, again)
    twin = tiny_encoder(seed=0).encode(pixels)
    assert torch.equal(first, twin)
    other = tiny_encoder(seed=1).encode(pixels)
    assert not torch.allclose(first, other)


def test_batch_items_are_independent(encoder, pixels):
    both = encoder.encode(pixels)
    single = encoder.encode(pixels[1:])
    torch.testing.assert_close(both[1:], single, rtol=1e-5, atol=1e-5)


def test_output_is_an_ordinary_tensor(encoder, pixels):
    out = encoder.encode(pixels[:1])
    out.mul_(2.0)  # an inference-mode tensor would refuse in-place updates
    assert not out.is_inference()


def test_rectangular_input_gives_rectangular_grid(encoder):
    out = encoder.encode(torch.rand(1, 3, 280, 518))
    assert out.shape == (1, 20, 37, 32)


@pytest.mark.parametrize(
    "bad",
    [torch.rand(3, 518, 518), torch.rand(1, 1, 518, 518), torch.rand(1, 3, 10, 10)],
)
def test_bad_input_raises(encoder, bad):
    with pytest.raises(ValueError, match="pixels"):
        encoder.encode(bad)


def test_float16_on_cpu_warns_once_and_runs_float32(monkeypatch, pixels):
    monkeypatch.setattr(models, "_warned_precision", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = tiny_encoder(seed=0, precision="float16")
        tiny_encoder(seed=0, precision="float16")
    messages = [str(w.message) for w in caught if "only applies on CUDA" in str(w.message)]
    assert len(messages) == 1  # once per process
    assert enc.precision == "float32" and enc.identity["precision"] == "float32"
    assert enc.encode(pixels[:1]).dtype == torch.float32


def test_bfloat16_on_a_cpu_without_native_bf16_says_why_and_runs_float32(monkeypatch, pixels):
    from fiftyone_ntt.models import precision

    monkeypatch.setattr(models, "_warned_precision", set())
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda *a: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = tiny_encoder(seed=0, precision="bfloat16")
    (message,) = [str(w.message) for w in caught if "bfloat16" in str(w.message)]
    assert "avx512_bf16" in message and "amx_bf16" in message and "float32" in message
    assert enc.precision == "float32"
    assert enc.encode(pixels[:1]).dtype == torch.float32


def test_bfloat16_on_a_cpu_with_native_bf16_autocasts(monkeypatch, pixels):
    from fiftyone_ntt.models import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda *a: True)
    enc = tiny_encoder(seed=0, precision="bfloat16")
    ref = tiny_encoder(seed=0)
    assert enc.precision == "bfloat16" and enc.identity["precision"] == "bfloat16"
    out, exact = enc.encode(pixels[:1]), ref.encode(pixels[:1])
    assert out.dtype == torch.float32  # the output contract holds
    assert not torch.equal(out, exact)  # bfloat16 did run
    cosine = torch.nn.functional.cosine_similarity(out.flatten(0, 2), exact.flatten(0, 2))
    assert float(cosine.min()) > 0.98


def test_cpu_bf16_flags_are_read_from_cpuinfo():
    from fiftyone_ntt.models.precision import cpu_bf16_flags, cpu_has_native_bf16

    with_bf16 = "processor : 0\nflags : fpu sse avx512f avx512_bf16 avx512_vnni\n"
    without = "processor : 0\nflags : fpu sse avx2 avx512f\n"
    assert cpu_bf16_flags(with_bf16) == {"avx512_bf16"}
    assert cpu_has_native_bf16(with_bf16) and not cpu_has_native_bf16(without)
    assert cpu_bf16_flags("flags : amx_bf16 amx_tile") == {"amx_bf16"}


def test_tf32_is_a_precision_and_changes_nothing_on_cpu(monkeypatch, pixels):
    monkeypatch.setattr(models, "_warned_precision", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = tiny_encoder(seed=0, precision="tf32")
    assert any("tf32" in str(w.message) for w in caught)
    assert torch.equal(enc.encode(pixels[:1]), tiny_encoder(seed=0).encode(pixels[:1]))


def test_unknown_precision_raises():
    with pytest.raises(ValueError, match="precision='fp8'"):
        tiny_encoder(seed=0, precision="fp8")
