"""SAM 2 mask proposer (docs/method.md §1.1, §5, §11) on tiny random weights.

The fast decoder is checked against ``transformers``' own ``Sam2MaskDecoder.forward`` and
``Sam2Model.forward`` on the same weights and inputs.
"""

from __future__ import annotations

import pytest
import torch

from fiftyone_ntt.models import MaskProposer, tiny_proposer
from fiftyone_ntt.models.dinov2 import IMAGENET_MEAN, IMAGENET_STD
from fiftyone_ntt.models.sam2 import Sam2Embedding

pytestmark = pytest.mark.unit


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((pixels - mean) / std)[None]


@pytest.fixture(scope="module")
def proposer():
    return tiny_proposer(seed=0, decode_batch_size=8)


@pytest.fixture(scope="module")
def image():
    return torch.rand((3, 1024, 1024), generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def embedding(proposer, image):
    return proposer.embed(image)


@pytest.fixture(scope="module")
def points():
    # 5×5 edge-to-edge grid (§11.2 item 2) = 25 prompts: 3 full batches of 8 + 1.
    g = torch.linspace(0, 1023, 5) + 0.5
    return torch.stack(torch.meshgrid(g, g, indexing="ij"), dim=-1).reshape(-1, 2)


def _hf_decoder(proposer, embedding, image_embedding, points):
    """transformers' Sam2MaskDecoder on single positive points, multimask outputs."""
    model = proposer.model
    n = points.shape[0]
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(
            input_points=points[None, :, None, :],
            input_labels=torch.ones((1, n, 1), dtype=torch.long),
            input_boxes=None,
            input_masks=None,
        )
        masks, iou, _, _ = model.mask_decoder(
            image_embeddings=image_embedding,
            image_positional_embeddings=model.get_image_wide_positional_embeddings(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            high_resolution_features=[embedding.high_res_s0, embedding.high_res_s1],
        )
    return masks[0], iou[0]  # (n, 3, 256, 256), (n, 3) for tokens 1..3


def _expected_proposals(masks, iou, threshold):
    best = torch.argmax(iou, dim=-1)  # among tokens 1..3, first on ties
    score = iou.gather(1, best[:, None])[:, 0]
    keep = torch.nonzero(score > threshold).flatten()
    return keep, masks[keep, best[keep]], score[keep], best


def test_protocol_and_identity(proposer):
    assert isinstance(proposer, MaskProposer)
    assert proposer.input_size == 1024 and proposer.mask_size == 256
    assert proposer.identity == {
        "family": "sam2",
        "version": "2.1",
        "arch": "hiera_tiny_random",
        "source": "tiny-random-sam2(seed=0)",
        "precision": "float32",
        "identity_version": 1,
    }


def test_embed_matches_hf_image_features_without_no_memory(proposer, image, embedding):
    assert embedding.image.shape == (1, 32, 64, 64)
    assert embedding.high_res_s0.shape == (1, 4, 256, 256)
    assert embedding.high_res_s1.shape == (1, 8, 128, 128)
    with torch.no_grad():
        # get_image_embeddings = conv_s0/conv_s1 high-res levels + (64² level + no_memory).
        s0, s1, with_no_memory = proposer.model.get_image_embeddings(_normalise(image))
    torch.testing.assert_close(embedding.high_res_s0, s0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(embedding.high_res_s1, s1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        embedding.image_with_no_memory(), with_no_memory, rtol=1e-5, atol=1e-5
    )
    # docs/method.md §1.1 quirk: the stored embedding does NOT include no_memory_embedding.
    assert embedding.no_memory.abs().max() > 0.1
    assert (embedding.image - with_no_memory).abs().max() > 0.1


def test_embed_is_deterministic(proposer, image, embedding):
    again = proposer.embed(image)
    assert torch.equal(again.image, embedding.image)
    assert torch.equal(again.high_res_s0, embedding.high_res_s0)
    twin, other = tiny_proposer(seed=0), tiny_proposer(seed=1)
    for name, value in proposer.model.state_dict().items():
        assert torch.equal(twin.model.state_dict()[name], value), name
    assert not torch.equal(
        other.model.mask_decoder.iou_token.weight, proposer.model.mask_decoder.iou_token.weight
    )


def test_propose_equals_hf_decoder(proposer, embedding, points):
    masks, iou = _hf_decoder(proposer, embedding, embedding.image, points)
    # A threshold half-way between two neighbouring scores: no float-rounding ties.
    ordered = iou.max(dim=-1).values.sort().values
    middle = ordered.numel() // 2
    assert float(ordered[middle] - ordered[middle - 1]) > 1e-4
    threshold = float(ordered[middle - 1] + ordered[middle]) / 2
    keep, expected_logits, expected_iou, best = _expected_proposals(masks, iou, threshold)
    # The case must exercise both outcomes of the threshold and several token choices.
    assert 0 < keep.numel() < points.shape[0]
    assert len(set(best.tolist())) >= 2

    index, logits, scores = proposer.propose(embedding, points, threshold)
    assert index.dtype == torch.int64 and logits.dtype == torch.float32
    assert torch.equal(index, keep)
    assert bool((index[1:] > index[:-1]).all())
    torch.testing.assert_close(scores, expected_iou, rtol=1e-5, atol=1e-5)
    scale = float(expected_logits.abs().max())
    assert scale > 1e-3
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5 * scale)


def test_propose_does_not_add_no_memory_embedding(proposer, embedding, points):
    index, logits, _ = proposer.propose(embedding, points, -1.0)
    masks, iou = _hf_decoder(proposer, embedding, embedding.image_with_no_memory(), points)
    _, with_no_memory, _, _ = _expected_proposals(masks, iou, -1.0)
    assert index.numel() == points.shape[0]
    # Visibly different from the decoder fed the no-memory embedding (§1.1, §11.2 item 1).
    assert (logits - with_no_memory).abs().max() > 1e-3


def test_threshold_is_strict(proposer, embedding, points):
    index, _, scores = proposer.propose(embedding, points, -1.0)
    value = float(scores[5])
    kept, _, kept_scores = proposer.propose(embedding, points, value)
    assert int(index[5]) not in kept.tolist()
    assert torch.equal(kept, index[scores > value])
    assert bool((kept_scores > value).all())
    none, none_logits, none_scores = proposer.propose(embedding, points, 1.0)
    assert none.shape == (0,) and none_logits.shape == (0, 256, 256) and none_scores.shape == (0,)


def test_results_do_not_depend_on_decode_batch_size(proposer, embedding, points):
    reference = proposer.propose(embedding, points, 0.5)
    other = tiny_proposer(seed=0, decode_batch_size=7)
    index, logits, scores = other.propose(embedding, points, 0.5)
    assert torch.equal(index, reference[0])
    torch.testing.assert_close(logits, reference[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores, reference[2], rtol=1e-5, atol=1e-6)


def test_empty_points(proposer, embedding):
    index, logits, scores = proposer.propose(embedding, torch.zeros((0, 2)), 0.4)
    assert index.shape == (0,) and index.dtype == torch.int64
    assert logits.shape == (0, 256, 256) and scores.shape == (0,)


def test_segment_boxes_equals_hf_image_predictor_path(proposer, image, embedding):
    boxes = torch.tensor(
        [[100.0, 150.0, 600.0, 700.0], [0.0, 0.0, 1023.0, 1023.0], [10, 900, 300, 1000]]
    )
    logits, scores = proposer.segment_boxes(embedding, boxes)
    assert logits.shape == (3, 256, 256) and scores.shape == (3,)
    decoder = proposer.model.mask_decoder
    saved = decoder.dynamic_multimask_via_stability
    decoder.dynamic_multimask_via_stability = False  # plain token 0, as specified
    try:
        with torch.no_grad():
            # Sam2Model.forward from pixels adds no_memory_embedding, like SAM2ImagePredictor.
            out = proposer.model(
                pixel_values=_normalise(image), input_boxes=boxes[None], multimask_output=False
            )
    finally:
        decoder.dynamic_multimask_via_stability = saved
    expected = out.pred_masks[0, :, 0]
    scale = float(expected.abs().max())
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(scores, out.iou_scores[0, :, 0], rtol=1e-5, atol=1e-5)


def test_segment_boxes_adds_no_memory_embedding(proposer, embedding):
    boxes = torch.tensor([[100.0, 150.0, 600.0, 700.0]])
    logits, _ = proposer.segment_boxes(embedding, boxes)
    without = Sam2Embedding(
        image=embedding.image,
        high_res_s0=embedding.high_res_s0,
        high_res_s1=embedding.high_res_s1,
        no_memory=torch.zeros_like(embedding.no_memory),
    )
    plain, _ = proposer.segment_boxes(without, boxes)
    assert (logits - plain).abs().max() > 1e-3


def test_outputs_are_ordinary_tensors(proposer, embedding, points):
    _, logits, scores = proposer.propose(embedding, points[:3], -1.0)
    logits.add_(1.0)
    scores.mul_(2.0)
    assert not logits.is_inference()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p, e: p.embed(torch.rand(3, 512, 512)), ValueError),
        (lambda p, e: p.embed(torch.rand(1, 3, 1024, 1024)), ValueError),
        (lambda p, e: p.propose(e, torch.rand(4, 3), 0.4), ValueError),
        (lambda p, e: p.propose(e, torch.tensor([[float("nan"), 1.0]]), 0.4), ValueError),
        (lambda p, e: p.propose(e, torch.rand(4, 2), float("nan")), ValueError),
        (lambda p, e: p.segment_boxes(e, torch.rand(4, 2)), ValueError),
        (lambda p, e: p.propose("not an embedding", torch.rand(4, 2), 0.4), TypeError),
    ],
)
def test_bad_inputs_raise(proposer, embedding, call, error):
    with pytest.raises(error):
        call(proposer, embedding)
