"""The low-rank SAM 2 decoder (``models/sam2/lowrank.py``) at real size.

Checked against ``transformers``' own ``Sam2MaskDecoder.forward`` with the real SAM 2
decoder configuration (hidden size 256, 2 two-way blocks, 8 heads) and random weights,
including random LayerNorm weights/biases: they start at 1/0, which would hide a mistake
in how the low-rank form applies them. The prompts run in several passes on two worker
threads, the path the CPU default takes for a batch of prompts.
"""

from __future__ import annotations

import pytest
import torch
from transformers.models.sam2.configuration_sam2 import Sam2MaskDecoderConfig
from transformers.models.sam2.modeling_sam2 import Sam2MaskDecoder

from fiftyone_ntt.models.sam2.decoder import FastMaskDecoder
from fiftyone_ntt.models.sam2.lowrank import LowRankMaskDecoder, supports_low_rank

pytestmark = pytest.mark.unit

SIDE = 64
PROMPTS = 24


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    config = Sam2MaskDecoderConfig(dynamic_multimask_via_stability=False)
    config._attn_implementation = "eager"
    assert config.hidden_size == 256 and config.num_hidden_layers == 2
    decoder = Sam2MaskDecoder(config).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in decoder.modules():
            if isinstance(module, torch.nn.LayerNorm):
                shape = module.weight.shape
                module.weight.add_(0.3 * torch.randn(shape, generator=gen))
                module.bias.add_(0.2 * torch.randn(shape, generator=gen))
    c = config.hidden_size
    inputs = {
        # A per-pixel offset (mean 0.5) makes the LayerNorm statistics cancel if computed
        # naively as E[x²] − μ².
        "image": torch.randn((1, c, SIDE, SIDE), generator=gen) + 0.5,
        "dense": 0.1 * torch.randn((1, c, SIDE, SIDE), generator=gen),
        "pe": torch.randn((1, c, SIDE, SIDE), generator=gen),
        "sparse": 3.0 * torch.randn((1, PROMPTS, 2, c), generator=gen),
        "s0": torch.randn((1, c // 8, 4 * SIDE, 4 * SIDE), generator=gen),
        "s1": torch.randn((1, c // 4, 2 * SIDE, 2 * SIDE), generator=gen),
    }
    return decoder, inputs


def _hf(decoder, inputs, multimask):
    with torch.no_grad():
        masks, iou, _, _ = decoder(
            image_embeddings=inputs["image"],
            image_positional_embeddings=inputs["pe"],
            sparse_prompt_embeddings=inputs["sparse"],
            dense_prompt_embeddings=inputs["dense"],
            multimask_output=multimask,
            high_resolution_features=[inputs["s0"], inputs["s1"]],
        )
    return masks[0], iou[0]


def _ours(decoder_class, decoder, inputs, threshold, **kwargs):
    pe = inputs["pe"][0].flatten(1).T.contiguous()
    fast = decoder_class(decoder, pe, SIDE, **kwargs)
    image = (inputs["image"] + inputs["dense"])[0].flatten(1).T.contiguous()
    with torch.inference_mode():
        terms = fast.image_terms(image)
        plan = fast.plan(inputs["s0"], inputs["s1"], torch.float32)
        return fast.decode(terms, inputs["sparse"][0], plan, threshold)


def test_real_size_equals_transformers_multimask(setup):
    decoder, inputs = setup
    masks, iou = _hf(decoder, inputs, multimask=True)
    best = iou.argmax(-1)
    score = iou.gather(1, best[:, None])[:, 0]
    # The threshold sits in the widest gap between neighbouring scores of the middle half:
    # no float-rounding ties, and both outcomes of the threshold occur.
    ordered = score.sort().values
    quarter = PROMPTS // 4
    gaps = ordered[quarter : 3 * quarter] - ordered[quarter - 1 : 3 * quarter - 1]
    middle = quarter + int(gaps.argmax())
    assert float(ordered[middle] - ordered[middle - 1]) > 1e-4
    threshold = float(ordered[middle - 1] + ordered[middle]) / 2
    expected_keep = torch.nonzero(score > threshold).flatten()
    assert 0 < expected_keep.numel() < PROMPTS and len(set(best.tolist())) >= 2

    threads = torch.get_num_threads()
    keep, logits, scores = _ours(LowRankMaskDecoder, decoder, inputs, threshold, chunk=5, workers=2)
    assert torch.get_num_threads() == threads
    assert torch.equal(keep, expected_keep)
    torch.testing.assert_close(scores, score[keep], rtol=1e-5, atol=1e-5)
    expected = masks[keep, best[keep]]
    scale = float(expected.abs().max())
    assert scale > 1e-3
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * scale)


def test_real_size_single_mask_equals_transformers_and_fast(setup):
    decoder, inputs = setup
    masks, iou = _hf(decoder, inputs, multimask=False)
    keep, logits, scores = _ours(LowRankMaskDecoder, decoder, inputs, None, chunk=7)
    assert torch.equal(keep, torch.arange(PROMPTS))
    torch.testing.assert_close(scores, iou[:, 0], rtol=1e-5, atol=1e-5)
    scale = float(masks.abs().max())
    torch.testing.assert_close(logits, masks[:, 0], rtol=1e-5, atol=1e-5 * scale)
    _, fast_logits, fast_scores = _ours(FastMaskDecoder, decoder, inputs, None)
    torch.testing.assert_close(logits, fast_logits, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(scores, fast_scores, rtol=1e-5, atol=1e-5)


def test_other_decoder_shapes_are_refused():
    decoder = Sam2MaskDecoder(
        Sam2MaskDecoderConfig(hidden_size=32, mlp_dim=64, num_hidden_layers=1)
    )
    assert not supports_low_rank(decoder)
    with pytest.raises(ValueError, match="FastMaskDecoder"):
        LowRankMaskDecoder(decoder, torch.zeros((SIDE * SIDE, 32)), SIDE)


def _threshold(decoder, inputs):
    """A threshold in the widest gap of the middle half of the multimask scores."""
    _, iou = _hf(decoder, inputs, multimask=True)
    ordered = iou[:, 1:].max(-1).values.sort().values
    quarter = PROMPTS // 4
    gaps = ordered[quarter : 3 * quarter] - ordered[quarter - 1 : 3 * quarter - 1]
    middle = quarter + int(gaps.argmax())
    return float(ordered[middle - 1] + ordered[middle]) / 2


def test_bf16_upscaling_keeps_the_float32_prompts_and_iou(setup):
    """CPU bfloat16: only the upscaling runs in bf16, so the kept prompts and IoU are
    bit-identical to float32, even under a caller's bf16 autocast (switched off inside,
    also on the worker threads); the logits are close and the binary masks agree."""
    decoder, inputs = setup
    threshold = _threshold(decoder, inputs)
    keep, logits, scores = _ours(LowRankMaskDecoder, decoder, inputs, threshold, chunk=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        keep16, logits16, scores16 = _ours(
            LowRankMaskDecoder,
            decoder,
            inputs,
            threshold,
            chunk=5,
            workers=2,
            upscale_dtype=torch.bfloat16,
        )
        # float32 under a caller's autocast: autocast is off inside, so bit-identical.
        keep32, logits32, scores32 = _ours(
            LowRankMaskDecoder, decoder, inputs, threshold, chunk=5, workers=2
        )
    assert torch.equal(keep32, keep) and torch.equal(scores32, scores)
    assert torch.equal(logits32, logits)
    assert 0 < keep.numel() < PROMPTS
    assert torch.equal(keep16, keep) and torch.equal(scores16, scores)
    assert logits16.dtype == torch.float32 and not torch.equal(logits16, logits)  # bf16 ran
    scale = float(logits.abs().max())
    torch.testing.assert_close(logits16, logits, rtol=0, atol=0.02 * scale)
    a, b = logits16 > 0, logits > 0
    mask_iou = (a & b).flatten(1).sum(1) / (a | b).flatten(1).sum(1).clamp(min=1)
    assert float(mask_iou.min()) > 0.97


def test_unsupported_upscale_dtype_is_refused(setup):
    decoder, inputs = setup
    pe = inputs["pe"][0].flatten(1).T.contiguous()
    with pytest.raises(ValueError, match=r"upscale_dtype=torch\.float16"):
        LowRankMaskDecoder(decoder, pe, SIDE, upscale_dtype=torch.float16)


def test_proposer_cpu_bfloat16_uses_the_low_rank_decoder(monkeypatch):
    """``Sam2Proposer(precision="bfloat16")`` on CPU: the low-rank decoder with a bf16
    upscaling; on one embedding its kept prompts and IoU equal float32's."""
    from fiftyone_ntt.models import precision
    from fiftyone_ntt.models.tiny import tiny_proposer

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda *a: True)
    bf16, f32 = tiny_proposer(seed=0, precision="bfloat16"), tiny_proposer(seed=0)
    assert bf16.precision == "bfloat16"
    assert isinstance(bf16._decoder, LowRankMaskDecoder)
    assert bf16._decoder.upscale_dtype == torch.bfloat16
    assert f32._decoder.upscale_dtype == torch.float32
    gen = torch.Generator().manual_seed(3)
    embedding = f32.embed(torch.rand((3, f32.input_size, f32.input_size), generator=gen))
    points = torch.rand((20, 2), generator=gen) * f32.input_size
    index32, logits32, iou32 = f32.propose(embedding, points, 0.0)
    index16, logits16, iou16 = bf16.propose(embedding, points, 0.0)
    assert index32.numel() > 0
    assert torch.equal(index16, index32) and torch.equal(iou16, iou32)
    scale = float(logits32.abs().max())
    torch.testing.assert_close(logits16, logits32, rtol=0, atol=0.02 * scale)
