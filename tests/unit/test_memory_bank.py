"""Memory bank: reference pooling (docs/method.md §3), prototypes (§4), files, edits, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fiftyone_ntt.bank_build import build_memory_bank, masks_from_boxes
from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.memory_bank import (
    FORMAT_VERSION,
    BankFormatError,
    EncoderMismatchError,
    MemoryBank,
)
from fiftyone_ntt.preprocess import context_crop_window, mask_to_patch_weights, reference_crop
from fiftyone_ntt.testing import ColorEncoder, RegionProposer, paint
from fiftyone_ntt.types import Reference

pytestmark = pytest.mark.unit


def _ref(color, box, ref_id, name, size=(200, 260), with_mask=True):
    image = paint(size, [(color, box)])
    mask = None
    if with_mask:
        mask = np.zeros(size, dtype=bool)
        x1, y1, x2, y2 = box
        mask[y1:y2, x1:x2] = True
    return Reference(image, name, ref_id, mask=mask, box=None if with_mask else box)


@pytest.fixture
def refs():
    return [
        _ref(1, (40, 40, 100, 120), "r1", "red"),
        _ref(1, (120, 60, 200, 110), "r2", "red"),
        _ref(1, (10, 20, 60, 70), "r3", "red"),
        _ref(2, (60, 50, 150, 140), "g1", "green"),
    ]


def test_context_crop_window_follows_reference_rounding():
    # box (10.7, 20.2, 50.9, 40.5) -> int -> (10, 20, 50, 40); centre (30, 30); side 40 * 1.2
    assert context_crop_window((10.7, 20.2, 50.9, 40.5), (100, 100), 0.2) == (6, 6, 54, 54)
    # clipped at the border: the window becomes non-square
    assert context_crop_window((0, 0, 20, 10), (100, 100), 0.2) == (0, 0, 22, 17)


def test_reference_mask_is_soft_and_sampled_at_patch_top_left():
    image = paint((100, 100), [(1, (30, 30, 70, 70))])
    mask = np.zeros((100, 100), dtype=bool)
    mask[30:70, 30:70] = True
    crop, soft = reference_crop(image, mask, (30, 30, 70, 70), context_ratio=0.2, size=518)
    assert crop.shape == (1, 3, 518, 518) and soft.shape == (518, 518)
    assert ((soft > 0) & (soft < 1)).any()  # bilinear gives soft edges
    weights = mask_to_patch_weights(soft, 37)
    expected = soft[::14, ::14][:37, :37].reshape(-1)
    torch.testing.assert_close(weights, expected)


def test_instance_feature_is_mask_weighted_mean(refs):
    encoder = ColorEncoder()
    bank = build_memory_bank(refs[:1], encoder)
    crop, soft = reference_crop(
        refs[0].image, refs[0].mask, refs[0].box, context_ratio=0.2, size=518
    )
    tokens = encoder.encode(crop)[0].reshape(37 * 37, -1)
    weights = mask_to_patch_weights(soft, 37)
    expected = (weights @ tokens) / weights.sum()
    np.testing.assert_allclose(bank.features[0], expected.numpy(), rtol=1e-6)


def test_prototype_is_mean_of_per_instance_means_hand_computed():
    bank = MemoryBank(
        features=np.array([[2.0, 0.0], [0.0, 4.0], [1.0, 1.0], [3.0, 4.0]], dtype=np.float32),
        class_ids=np.array([0, 0, 0, 1]),
        class_names=("a", "b"),
        reference_ids=("1", "2", "3", "4"),
        generated_masks=np.zeros(4, dtype=bool),
        encoder={},
        settings={},
    )
    # class a: mean = (1, 5/3) -> normalised; class b: (3, 4) / 5
    a = np.array([1.0, 5.0 / 3.0])
    np.testing.assert_allclose(
        bank.prototypes().numpy(), [a / np.linalg.norm(a), [0.6, 0.8]], rtol=1e-6
    )


def test_unequal_shots_per_class(refs):
    bank = build_memory_bank(refs, ColorEncoder())
    assert bank.shots_per_class() == {"red": 3, "green": 1}
    prototypes = bank.prototypes()
    assert torch.isfinite(prototypes).all()
    assert prototypes.shape == (2, len(bank.features[0]))


def test_class_order_and_validation(refs):
    bank = build_memory_bank(refs, ColorEncoder(), class_names=["green", "red"])
    assert bank.class_names == ("green", "red")
    assert bank.class_ids.tolist() == [1, 1, 1, 0]
    with pytest.raises(ValueError, match=r"classes \['blue'\] have no reference"):
        build_memory_bank(refs, ColorEncoder(), class_names=["green", "red", "blue"])
    with pytest.raises(ValueError, match="not in class_names"):
        build_memory_bank(refs, ColorEncoder(), class_names=["red"])
    with pytest.raises(ValueError, match="no references"):
        build_memory_bank([], ColorEncoder())


def test_box_only_references_get_generated_masks():
    box_only = _ref(2, (60, 50, 150, 140), "g1", "green", with_mask=False)
    with pytest.raises(ValueError, match="pass a mask proposer"):
        build_memory_bank([box_only], ColorEncoder())
    bank = build_memory_bank([box_only], ColorEncoder(), RegionProposer())
    assert bank.generated_masks.tolist() == [True]
    assert bank.features[0].argmax() == 2 and bank.features[0, 2] > 0.9  # green dominates
    # The generated mask is the green square, up to the 256-px low-res boundary.
    (mask,) = masks_from_boxes(box_only.image, [box_only.box], RegionProposer())
    truth = np.zeros_like(mask)
    truth[50:140, 60:150] = True
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9


def test_empty_generated_mask_falls_back_to_the_box():
    image = paint((100, 100), [])  # background only: the fake proposer finds nothing
    (mask,) = masks_from_boxes(image, [(10.0, 20.0, 30.0, 50.0)], RegionProposer())
    expected = np.zeros((100, 100), dtype=bool)
    expected[20:50, 10:30] = True
    np.testing.assert_array_equal(mask, expected)


def test_round_trip_and_fingerprint(tmp_path, refs):
    bank = build_memory_bank(refs, ColorEncoder(), metadata={"category_ids": [1, 2]})
    path = bank.save(tmp_path / "bank.safetensors")
    loaded = MemoryBank.load(path)
    assert loaded.fingerprint == bank.fingerprint
    np.testing.assert_array_equal(loaded.features, bank.features)
    assert loaded.class_names == bank.class_names
    assert loaded.reference_ids == bank.reference_ids
    assert loaded.metadata == {"category_ids": [1, 2]}
    again = build_memory_bank(refs, ColorEncoder(), metadata={"category_ids": [1, 2]})
    assert again.fingerprint == bank.fingerprint  # deterministic


def test_bank_size_for_20_classes_30_shots_is_small(tmp_path):
    rng = np.random.default_rng(0)
    bank = MemoryBank(
        features=rng.standard_normal((600, 1024)).astype(np.float32),
        class_ids=np.repeat(np.arange(20), 30),
        class_names=tuple(f"class {i}" for i in range(20)),
        reference_ids=tuple(str(i) for i in range(600)),
        generated_masks=np.zeros(600, dtype=bool),
        encoder={"family": "dinov2"},
        settings={},
    )
    path = bank.save(tmp_path / "big.safetensors")
    assert path.stat().st_size < 5 * 1024 * 1024


def test_add_and_remove_references_make_new_fingerprints(refs):
    encoder = ColorEncoder()
    first = build_memory_bank(refs[:2], encoder)
    second = build_memory_bank(refs[2:], encoder)
    merged = first.merged(second)
    assert merged.shots_per_class() == {"red": 3, "green": 1}
    assert len({first.fingerprint, second.fingerprint, merged.fingerprint}) == 3
    smaller = merged.without(["g1"])
    assert smaller.class_names == ("red",)
    assert smaller.fingerprint not in (merged.fingerprint, first.fingerprint)
    with pytest.raises(KeyError, match="nope"):
        merged.without(["nope"])


def test_load_errors(tmp_path, refs):
    with pytest.raises(BankFormatError, match="does not exist"):
        MemoryBank.load(tmp_path / "missing.safetensors")
    path = build_memory_bank(refs, ColorEncoder()).save(tmp_path / "bank.safetensors")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BankFormatError, match="truncated"):
        MemoryBank.load(truncated)
    not_a_bank = tmp_path / "other.safetensors"
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, dtype=np.float32)}, str(not_a_bank))
    with pytest.raises(BankFormatError, match="not a fiftyone-ntt memory bank"):
        MemoryBank.load(not_a_bank)
    text = tmp_path / "text.safetensors"
    text.write_text("hello")
    with pytest.raises(BankFormatError):
        MemoryBank.load(text)


def test_version_mismatch_names_both_versions(tmp_path, refs):
    from safetensors.numpy import load_file, save_file

    path = build_memory_bank(refs, ColorEncoder()).save(tmp_path / "bank.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    meta["format_version"] = str(FORMAT_VERSION + 1)
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(BankFormatError, match=rf"version {FORMAT_VERSION + 1}.*{FORMAT_VERSION}"):
        MemoryBank.load(path)


def test_tampered_bank_fails_fingerprint(tmp_path, refs):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    path = build_memory_bank(refs, ColorEncoder()).save(tmp_path / "bank.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    tensors["features"] = tensors["features"] * 2
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(BankFormatError, match="fingerprint"):
        MemoryBank.load(path)


def test_encoder_mismatch_names_both_and_the_fix(refs):
    bank = build_memory_bank(refs, ColorEncoder())
    other = dict(bank.encoder, arch="vit_small", feature_dim=384)
    with pytest.raises(EncoderMismatchError, match=r"histogram.*vit_small.*rebuild"):
        bank.check_encoder(other)
    with pytest.warns(UserWarning, match="same architecture"):
        bank.check_encoder(dict(bank.encoder, source="elsewhere"))


def test_header_is_json(tmp_path, refs):
    from safetensors import safe_open

    bank = build_memory_bank(refs, ColorEncoder(), config=NTTConfig(reference_context_ratio=0.1))
    path = bank.save(tmp_path / "b.safetensors")
    with safe_open(str(path), framework="numpy") as f:
        header = json.loads(f.metadata()["bank"])
    assert header["settings"] == {"reference_context_ratio": 0.1, "reference_size": 518}
    assert header["fingerprint"] == bank.fingerprint
