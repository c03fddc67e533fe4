"""Reliability (issue 6): bad input of every kind, on a real MongoDB with the fake models.

Each bad input must give a clear message naming the sample/label/value and the fix, a long
run must skip and report a bad sample instead of aborting, and nothing but the output field
may change: the ground truth, other tags and unrelated fields are hashed before and after.
Interrupted and overlapping runs are in ``test_reliability_runs.py``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
H, W = 96, 128
#: a painted image that the fake models segment exactly: one red, one green object
LAYOUT = [(1, (8, 10, 40, 42)), (2, (60, 20, 100, 60))]


def _paint(size=(H, W), shapes=LAYOUT):
    from fiftyone_ntt.testing import paint

    return paint(size, shapes)


def _config():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


# ------------------------------------------------------------------------------ images
# Each maker writes one file under ``d`` and returns its path. ``ok``: the sample must be
# segmented (and, where ``expect`` says so, give the same predictions as the plain image);
# otherwise it must be skipped and reported with a message containing every ``words``.


def _save(d: Path, name: str, image, **kwargs) -> str:
    from PIL import Image

    path = d / name
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, **kwargs)
    return str(path)


def _missing(d):
    return str(d / "does-not-exist.png")


def _corrupt(d):
    path = d / "corrupt.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    return str(path)


def _truncated(d):
    full = Path(_save(d, "full.png", _paint()))
    path = d / "truncated.png"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return str(path)


def _not_an_image(d):
    path = d / "notes.jpg"
    path.write_text("this is text, not a JPEG\n")
    return str(path)


def _zero_bytes(d):
    path = d / "empty.png"
    path.write_bytes(b"")
    return str(path)


def _gray(d):
    from PIL import Image

    return _save(d, "gray.png", Image.fromarray(_paint()).convert("L"))


def _rgba(d):
    from PIL import Image

    return _save(d, "rgba.png", Image.fromarray(_paint()).convert("RGBA"))


def _palette(d):
    from PIL import Image

    return _save(d, "palette.png", Image.fromarray(_paint()).convert("P"))


def _sixteen_bit(d):
    from PIL import Image

    gray = np.asarray(Image.fromarray(_paint()).convert("L")).astype(np.uint16) * 257
    return _save(d, "gray16.png", Image.fromarray(gray))


def _cmyk_jpeg(d):
    from PIL import Image

    return _save(d, "cmyk.jpg", Image.fromarray(_paint()).convert("CMYK"), quality=100)


def _exif_rotated(d):
    """Stored rotated by 90 degrees with EXIF orientation 6: displayed as the plain image."""
    from PIL import Image

    stored = Image.fromarray(_paint()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(d, "exif6.png", stored, exif=exif)


def _one_pixel(d):
    return _save(d, "one.png", _paint((1, 1), [(1, (0, 0, 1, 1))]))


def _thin(d):
    return _save(d, "thin.png", _paint((4, 3000), [(1, (100, 0, 900, 4))]))


def _tall(d):
    return _save(d, "tall.png", _paint((3000, 4), [(2, (0, 100, 4, 900))]))


def _huge(d):
    """12000 x 9000 (108 MP) with one large object."""
    return _save(
        d, "huge.png", _paint((9000, 12000), [(1, (1000, 1000, 5000, 4000))]), compress_level=1
    )


IMAGE_CASES = {
    # name: (maker, ok, words in the failure message / "same": predictions as the plain image)
    "missing file": (_missing, False, ["does-not-exist.png", "does not exist", "filepath"]),
    "corrupt file": (_corrupt, False, ["corrupt.png", "corrupt"]),
    "truncated file": (_truncated, False, ["truncated.png", "corrupt"]),
    "text named .jpg": (_not_an_image, False, ["notes.jpg", "not an image"]),
    "zero-byte file": (_zero_bytes, False, ["empty.png", "0 bytes"]),
    "grayscale": (_gray, True, None),
    "RGBA": (_rgba, True, "same"),
    "palette": (_palette, True, None),  # quantised: colours move a little
    "16-bit": (_sixteen_bit, True, None),
    "CMYK JPEG": (_cmyk_jpeg, True, None),
    "EXIF-rotated": (_exif_rotated, True, "same"),
    "1x1 px": (_one_pixel, True, None),
    "very thin 3000x4": (_thin, True, None),
    "very tall 4x3000": (_tall, True, None),
    "very large 12000x9000": (_huge, True, None),
}


@pytest.fixture(scope="module")
def image_bench(fo_session, tmp_path_factory):
    """A dataset with one plain painted sample and its bank (built once for the module)."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    d = tmp_path_factory.mktemp("images")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
        mp.setenv("FIFTYONE_NTT_BANKS_DIR", str(d / "banks"))
        dataset = fo.Dataset()
        ref = fo.Sample(
            filepath=_save(d, "ref.png", _paint()),
            ground_truth=fo.Detections(
                detections=[
                    fo.Detection(
                        label=label,
                        bounding_box=[x1 / W, y1 / H, (x2 - x1) / W, (y2 - y1) / H],
                        mask=np.ones((y2 - y1, x2 - x1), dtype=bool),
                        tags=["ntt:ref"],
                    )
                    for label, (_, (x1, y1, x2, y2)) in zip(["red", "green"], LAYOUT)
                ]
            ),
        )
        plain = fo.Sample(filepath=_save(d, "plain.png", _paint()), notes="unrelated")
        dataset.add_samples([ref, plain])
        nf.build_bank(dataset, GT, "colours", preset="default")
        yield dataset, d, plain.id, mp
    dataset.delete()


def _dets(dataset, field, sample_id):
    dets = dataset[sample_id][field]
    if dets is None:
        return None
    return [
        (d.label, round(d.confidence, 5), tuple(np.round(d.bounding_box, 5)), d.mask.tobytes())
        for d in dets.detections
    ]


def _protected_hashes(dataset):
    """Hashes of everything but the prediction fields: ground truth, tags, unrelated fields,
    metadata, filepaths."""
    import hashlib

    import bson

    fields = {"filepath": 1, "tags": 1, GT: 1, "notes": 1, "metadata": 1}
    digest = hashlib.sha256()
    for doc in dataset._sample_collection.find({}, fields).sort("_id", 1):
        digest.update(bson.encode({k: doc.get(k) for k in fields}))
    return digest.hexdigest()


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled)."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.base = self.peak = self._proc.memory_info().rss
        self._stop = False
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop:
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop = True
        self._thread.join()


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_bad_image_is_skipped_or_segmented(image_bench, case):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset, d, plain_id, _ = image_bench
    maker, ok, expect = IMAGE_CASES[case]
    sample = fo.Sample(filepath=maker(d), notes="unrelated")
    dataset.add_sample(sample)
    field = "out_" + "_".join("".join(c if c.isalnum() else " " for c in case).split())
    before = _protected_hashes(dataset)
    with PeakRSS() as rss:
        summary = nf.segment(
            dataset.select([plain_id, sample.id]), "colours", field, config=_config()
        )
    assert summary["status"] == "completed"
    assert rss.peak - rss.base < 3e9, f"{case}: peak memory grew by {rss.peak - rss.base:.3g} B"
    assert _dets(dataset, field, plain_id)  # the good sample is always done
    if ok:
        assert summary["failed"] == 0, summary["failures"]
        assert summary["processed"] == 2
        assert dataset[sample.id][field] is not None
        if expect == "same":
            assert _dets(dataset, field, sample.id) == _dets(dataset, field, plain_id)
    else:
        assert summary["processed"] == 1 and summary["failed"] == 1
        failure = summary["failures"][0]
        assert failure["sample_id"] == sample.id and failure["filepath"] == sample.filepath
        for word in expect:
            assert word in failure["error"], (word, failure["error"])
        assert dataset[sample.id][field] is None
        # the stored run results report it too
        stored = dataset.load_run_results(field)
        assert [f["sample_id"] for f in stored.failures] == [sample.id]
    assert _protected_hashes(dataset) == before
    dataset.delete_samples(sample)


@pytest.mark.parametrize(
    "metadata",
    [
        {"width": 7, "height": 5000},  # wrong
        {"width": None, "height": None},  # missing values
        None,  # no metadata at all
    ],
    ids=["wrong", "missing-values", "none"],
)
def test_wrong_or_missing_metadata_does_not_change_predictions(image_bench, metadata):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset, d, plain_id, _ = image_bench
    sample = fo.Sample(filepath=_save(d, "meta.png", _paint()))
    if metadata is not None:
        sample.metadata = fo.ImageMetadata(**metadata)
    dataset.add_sample(sample)
    before = _protected_hashes(dataset)
    nf.segment(dataset.select([plain_id, sample.id]), "colours", "meta", config=_config())
    assert _dets(dataset, "meta", sample.id) == _dets(dataset, "meta", plain_id)
    assert _protected_hashes(dataset) == before
    dataset.delete_samples(sample)
    dataset.delete_sample_field("meta")


# -------------------------------------------------------------------- out of memory


class OOMProposer:
    """The fake proposer, raising an out-of-memory error on images wider than ``wider``
    (``times`` times per image; None: always)."""

    def __init__(self, error, wider: int, times: int | None = None):
        from fiftyone_ntt.testing import RegionProposer

        self.inner = RegionProposer()
        self.error, self.wider, self.times = error, wider, times
        self.raised = 0
        self.input_size, self.mask_size = self.inner.input_size, self.inner.mask_size
        self.device, self.identity = self.inner.device, self.inner.identity
        self.width = None

    def embed(self, pixels):
        if self.width is not None and self.width > self.wider:
            if self.times is None or self.raised < self.times:
                self.raised += 1
                raise self.error
        return self.inner.embed(pixels)

    def propose(self, *args):
        return self.inner.propose(*args)

    def segment_boxes(self, *args):
        return self.inner.segment_boxes(*args)


@pytest.mark.parametrize(
    "error,times",
    [
        (
            lambda: __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate"),
            None,
        ),
        (lambda: RuntimeError("CUDA error: out of memory"), None),
        (lambda: RuntimeError("[enforce fail at alloc_cpu.cpp] out of memory"), 1),
    ],
    ids=["torch.OutOfMemoryError", "RuntimeError-oom", "oom-once-then-ok"],
)
def test_out_of_memory_skips_or_retries_the_sample(image_bench, error, times, monkeypatch):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf
    import fiftyone_ntt.segmenter as seg
    from fiftyone_ntt.testing import ColorEncoder

    dataset, d, plain_id, _ = image_bench
    big = fo.Sample(filepath=_save(d, "wide.png", _paint((H, 2 * W), LAYOUT)), notes="x")
    dataset.add_sample(big)
    proposer = OOMProposer(error(), wider=W, times=times)
    original = seg.Segmenter.predict

    def predict(self, image, **kwargs):
        proposer.width = image.shape[1]
        return original(self, image, **kwargs)

    monkeypatch.setattr(seg.Segmenter, "predict", predict)
    before = _protected_hashes(dataset)
    summary = nf.segment(
        dataset.select([plain_id, big.id]),
        "colours",
        "oom",
        config=_config(),
        encoder=ColorEncoder(),
        proposer=proposer,
    )
    assert summary["status"] == "completed"
    assert _dets(dataset, "oom", plain_id)
    if times is None:
        assert summary["processed"] == 1 and summary["failed"] == 1
        failure = summary["failures"][0]
        assert failure["sample_id"] == big.id
        assert "out of memory" in failure["error"] and "wide.png" in failure["error"]
        assert "device" in failure["error"]  # the fix: another device or smaller images
        assert proposer.raised >= 2  # retried once before giving up
    else:
        assert summary["processed"] == 2 and summary["failed"] == 0
        assert dataset[big.id]["oom"] is not None
    assert _protected_hashes(dataset) == before
    dataset.delete_samples(big)
    dataset.delete_sample_field("oom")


# ------------------------------------------------------------------------- references


def _tag(dataset, ids):
    dataset.select_labels(ids=ids, fields=GT).tag_labels("ntt:ref", label_fields=[GT])


def _gt_ids(dataset):
    return [[d.id for d in s[GT].detections] for s in dataset.select_fields(GT)]


def _untag_all(dataset):
    dataset.untag_labels("ntt:ref", label_fields=[GT])


def _refs_none_tagged(dataset):
    _untag_all(dataset)
    return {}, ["no label of 'ground_truth' is tagged 'ntt:ref'", "Tag references"]


def _refs_tag_in_other_field(dataset):
    import fiftyone as fo

    _untag_all(dataset)
    sample = dataset.first()
    sample["weather"] = fo.Classification(label="sunny", tags=["ntt:ref"])
    sample.save()
    return {}, ["'weather'", "not Detections", GT]


def _set_det(dataset, s, k, **values):
    sample = dataset.skip(s).first()
    det = sample[GT].detections[k]
    for key, value in values.items():
        det[key] = value
    sample.save()
    return sample, det


def _refs_mask_wrong_size(dataset):
    _set_det(dataset, 0, 0, mask=np.ones((5, 7), dtype=bool))
    return {"ok": True}, None


def _refs_mask_empty(dataset):
    # Refused since issue 19.6 (it used to be replaced by a SAM box mask without a word).
    _, det = _set_det(dataset, 0, 0, mask=np.zeros((32, 32), dtype=bool))
    return {}, [det.id, "covers no pixel", "skip_invalid_annotations"]


def _refs_box_partly_outside(dataset):
    _set_det(dataset, 0, 0, bounding_box=[-0.05, -0.05, 0.4, 0.5], mask=None)
    return {"ok": True}, None


def _refs_box_outside(dataset):
    sample, det = _set_det(dataset, 0, 0, bounding_box=[1.2, 0.1, 0.2, 0.2], mask=None)
    return {}, [det.id, Path(sample.filepath).name, "outside the image", "untag"]


def _refs_box_zero_area(dataset):
    sample, det = _set_det(dataset, 0, 0, bounding_box=[0.1, 0.1, 0.0, 0.2], mask=None)
    return {}, [det.id, Path(sample.filepath).name, "zero area", "untag"]


def _refs_class_without_reference(dataset):
    return {"classes": ["red", "green", "purple"]}, ["['purple']", "no reference", "leave"]


def _refs_unusual_class_name(dataset):
    name = "café / 猫 'x' \"y\" <z> $a.b"
    _set_det(dataset, 0, 0, label=name)
    return {"ok": True, "name": name}, None


def _refs_sample_deleted(dataset):
    dataset.delete_samples(dataset.skip(1).first())  # held the blue reference
    return {"ok": True, "classes_out": ["red", "green"]}, None


REFERENCE_CASES = {
    "none tagged": _refs_none_tagged,
    "tag in a non-Detections field": _refs_tag_in_other_field,
    "mask of the wrong size": _refs_mask_wrong_size,
    "empty mask": _refs_mask_empty,
    "box partly outside the image": _refs_box_partly_outside,
    "box outside the image": _refs_box_outside,
    "box of zero area": _refs_box_zero_area,
    "class with zero references": _refs_class_without_reference,
    "class name with unusual characters": _refs_unusual_class_name,
    "reference sample deleted since tagging": _refs_sample_deleted,
}


@pytest.mark.parametrize("case", list(REFERENCE_CASES))
def test_bad_references(painted_dataset, case):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    dataset.add_sample_field("notes", __import__("fiftyone").StringField)
    dataset.set_values("notes", [f"n{i}" for i in range(len(dataset))])
    expect, words = REFERENCE_CASES[case](dataset)
    before = _protected_hashes(dataset)
    classes = expect.get("classes")
    if words:
        with pytest.raises(ValueError) as info:
            nf.build_bank(dataset, GT, "refs", classes=classes)
        for word in words:
            assert word in str(info.value), (word, str(info.value))
        _, problems = nf.validate_build(dataset, GT, classes=classes, bank_key="refs")
        assert problems, "validate_build (the operator form) must report it too"
        assert nf.list_banks(dataset) == []
    else:
        info = nf.build_bank(dataset, GT, "refs", classes=classes)
        if "generated" in expect:
            assert info["generated_masks"] == expect["generated"]
        if "classes_out" in expect:
            assert info["classes"] == expect["classes_out"]
        summary = nf.segment(dataset, "refs", "pred", config=_config())
        assert summary["status"] == "completed" and summary["failed"] == 0
        assert summary["processed"] > 0
        if "name" in expect:
            assert expect["name"] in info["classes"]
            assert nf.load_bank(dataset, "refs").class_names == tuple(info["classes"])
    assert _protected_hashes(dataset) == before


# ------------------------------------------------------------------------------ banks


def _bank_missing(path):
    path.unlink()
    return ["colours", "missing", "rebuild"]


def _bank_truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return ["colours", "truncated", "rebuild"]


def _bank_not_a_bank(path):
    path.write_text("hello")
    return ["colours", "not a readable memory bank", "rebuild"]


def _bank_foreign_safetensors(path):
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, dtype=np.float32)}, str(path))
    return ["not a fiftyone-ntt memory bank"]


def _bank_other_version(path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    meta["format_version"] = "99"
    save_file(load_file(str(path)), str(path), metadata=meta)
    return ["format version 99", "rebuild"]


def _bank_other_encoder(path):
    from fiftyone_ntt.memory_bank import MemoryBank

    bank = MemoryBank.load(path)
    identity = dict(bank.encoder, arch="vit_large", family="dinov2")
    bank = MemoryBank(
        features=bank.features,
        class_ids=bank.class_ids,
        class_names=bank.class_names,
        reference_ids=bank.reference_ids,
        generated_masks=bank.generated_masks,
        encoder=identity,
        settings=bank.settings,
        metadata=bank.metadata,
        created=bank.created,
    )
    bank.save(path)
    # Rewritten on disk after the index was made: refused as another bank (issue 19.7)
    # before its encoder is looked at.
    return ["version 1", "another bank", "replaced on disk", "rebuild"]


BANK_CASES = {
    "missing file": _bank_missing,
    "truncated file": _bank_truncated,
    "not a bank": _bank_not_a_bank,
    "safetensors but not a bank": _bank_foreign_safetensors,
    "other format version": _bank_other_version,
    "other encoder": _bank_other_encoder,
}


@pytest.mark.parametrize("case", list(BANK_CASES))
def test_bad_bank_file(painted_dataset, case):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    info = nf.build_bank(dataset, GT, "colours")
    before = _protected_hashes(dataset)
    words = BANK_CASES[case](Path(info["path"]))
    with pytest.raises(ValueError) as error:
        nf.segment(dataset, "colours", "pred", config=_config())
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert not dataset.has_sample_field("pred")
    assert "pred" not in dataset.list_runs()
    assert _protected_hashes(dataset) == before


def test_bank_classes_absent_from_ground_truth_at_evaluation(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    nf.segment(dataset, "colours", "pred", config=_config())
    # another ground truth, with a class the bank does not know
    for sample in dataset.select_fields(GT):
        sample["other_gt"] = fo.Detections(
            detections=[fo.Detection(label="cat", bounding_box=[0.1, 0.1, 0.2, 0.2])]
        )
        sample.save()
    before = _protected_hashes(dataset)
    summary = nf.evaluate(dataset, "pred", "ev_other", gt_field="other_gt", use_masks=False)
    assert summary["tp"] == 0 and summary["fp"] > 0
    assert any("red" in note and "other_gt" in note for note in summary["notes"]), summary
    assert _protected_hashes(dataset) == before


# --------------------------------------------------------------------- fields and views


def test_output_field_refusals(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    dataset.add_sample_field(
        "weather", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification
    )
    before = _protected_hashes(dataset)
    cases = {
        GT: ["ground-truth field", "choose another"],
        "weather": ["'weather'", "Classification", "choose a new"],
        "bad name": ["not valid"],
        "a__b": ["'a__b'", "'__'"],
        "_private": ["'_private'", "start"],
    }
    for field, words in cases.items():
        with pytest.raises(ValueError) as error:
            nf.segment(dataset, "colours", field, config=_config())
        for word in words:
            assert word in str(error.value), (field, word, str(error.value))
    assert _protected_hashes(dataset) == before


def test_empty_view(painted_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    before = _protected_hashes(dataset)
    summary = nf.segment(dataset.limit(0), "colours", "pred", config=_config())
    assert summary["status"] == "completed"
    assert summary["total"] == 0 and summary["processed"] == 0 and summary["failed"] == 0
    assert _protected_hashes(dataset) == before


def test_video_dataset_is_segmented_and_a_bad_video_reported(make_dataset, tmp_path, monkeypatch):
    """Video datasets are segmented frame by frame (issue 12 §3; they used to be refused): a
    file that is no video is reported as a failure naming the file and the fix, the run
    completes, and no frame is written; a bank needs tagged frame labels."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    dataset = make_dataset("ntt-video")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 16)
    sample = fo.Sample(filepath=str(video))
    sample.frames[1] = fo.Frame(ground_truth=fo.Detections())
    dataset.add_sample(sample)
    from fiftyone_ntt.memory_bank import MemoryBank
    from fiftyone_ntt.testing import ColorEncoder

    bank = MemoryBank(
        features=np.ones((1, 6), dtype=np.float32),
        class_ids=np.zeros(1, dtype=np.int64),
        class_names=("red",),
        reference_ids=("r",),
        generated_masks=np.zeros(1, dtype=bool),
        encoder=ColorEncoder().identity,
        settings={},
    )
    summary = nf.segment(dataset, bank, "pred")
    assert summary["status"] == "completed" and summary["processed"] == 0
    assert summary["failed"] == 1, summary
    error = summary["failures"][0]["error"]
    assert str(video) in error and "re-encode" in error, error
    assert dataset.count("frames.pred") == 0
    with pytest.raises(ValueError) as raised:
        nf.build_bank(dataset, "frames.ground_truth", "b")
    message = str(raised.value)
    assert "frames.ground_truth" in message and "tag" in message, message


def test_grouped_dataset(make_dataset, tmp_path, monkeypatch):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf

    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(tmp_path / "banks"))
    dataset = make_dataset("ntt-group")
    dataset.add_group_field("group", default="left")
    samples = []
    for i in range(3):
        group = fo.Group()
        for side in ("left", "right"):
            samples.append(
                fo.Sample(
                    filepath=_save(tmp_path, f"{side}{i}.png", _paint()),
                    group=group.element(side),
                    ground_truth=fo.Detections(
                        detections=[
                            fo.Detection(
                                label="red",
                                bounding_box=[8 / W, 10 / H, 32 / W, 32 / H],
                                mask=np.ones((32, 32), dtype=bool),
                                tags=["ntt:ref"] if (i, side) == (0, "left") else [],
                            )
                        ]
                    ),
                )
            )
    dataset.add_samples(samples)
    # the whole grouped dataset: refused with the way out
    with pytest.raises(ValueError) as error:
        nf.build_bank(dataset, GT, "b")
    assert "group" in str(error.value) and "select_group_slices" in str(error.value)
    # one slice, or all image slices flattened: works
    images = dataset.select_group_slices(media_type="image")
    nf.build_bank(images, GT, "b")
    with pytest.raises(ValueError, match="select_group_slices"):
        nf.segment(dataset, "b", "pred", config=_config())
    summary = nf.segment(images, "b", "pred", config=_config())
    assert summary["status"] == "completed" and summary["processed"] == 5
    assert images.exists("pred").count() == 5


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize(
    "models,words",
    [
        ({"dinov2": "nobody/no-such-model-xyz"}, ["nobody/no-such-model-xyz"]),
        ({"dinov2": "facebook/dinov2-large"}, ["facebook/dinov2-large", "offline"]),
        ({"dinov2": "/nonexistent/dinov2_vitl14.pth"}, ["/nonexistent/dinov2_vitl14.pth"]),
        ({"device": "cuda"}, ["cuda", "cpu"]),
        ({"device": "tpu:7"}, ["tpu:7"]),
    ],
    ids=[
        "unknown hub id",
        "offline without cache",
        "missing file",
        "cuda without cuda",
        "bad device",
    ],
)
def test_model_errors_are_clear(painted_dataset, monkeypatch, tmp_path, models, words):
    import fiftyone_ntt.fiftyone as nf

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours")
    monkeypatch.delenv("FIFTYONE_NTT_TEST_MODELS")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    config = _config()
    config = config.replace(
        models={"sam2": "/nonexistent/x.pt", "dinov2": "/nonexistent/y.pth", **models}
    )
    if "device" in models:
        config = config.replace(
            models={
                "sam2": "facebook/sam2.1-hiera-tiny",
                "dinov2": "facebook/dinov2-small",
                **models,
            }
        )
    before = _protected_hashes(dataset)
    with pytest.raises((ValueError, OSError)) as error:
        nf.segment(dataset, "colours", "pred", config=config)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert not dataset.has_sample_field("pred")
    assert _protected_hashes(dataset) == before


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {
        "images": len(IMAGE_CASES) + 3,  # + 3 metadata variants
        "out of memory": 3,
        "references": len(REFERENCE_CASES),
        "banks": len(BANK_CASES) + 1,
        "fields and views": 5 + 1 + 1 + 1,
        "models": 5,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))


def test_importing_a_submodule_keeps_the_exported_functions():
    """``segment`` and ``evaluate`` are submodules and exported functions: importing the
    submodule first (``from fiftyone_ntt.fiftyone.runs.job import run_state``) must not turn
    ``nf.segment`` into the module."""
    import subprocess
    import sys

    code = (
        "import fiftyone_ntt.fiftyone.runs.job, fiftyone_ntt.fiftyone.evaluation.evaluate\n"
        "import fiftyone_ntt.fiftyone as nf\n"
        "assert callable(nf.segment) and callable(nf.evaluate), (nf.segment, nf.evaluate)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
