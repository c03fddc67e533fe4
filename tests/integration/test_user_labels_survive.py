"""Issue 19 acceptance: the fields a user owns survive every entry point byte for byte.

Every field of every sample is hashed (as MongoDB stores it) before and after each step;
a step may change only the fields it is meant to write (its own prediction field, the
label tags it sets, FiftyOne's evaluation fields), never the user's: a person's labels
(``human``), a copy of the ground truth (``gt_copy``), another model's predictions
(``other_model``), a string field (``note``). A step aimed at one of those fields is
refused and changes nothing; the same step with an explicit overwrite replaces it.
Entry points: the SDK (segment, preview, NTTModel.apply, build bank, evaluate), every
operator through FiftyOne's operator execution, the panel's actions, and the protocol
runner behind the ``fiftyone_ntt.fiftyone.protocols`` command line is ``segment``
(covered by the SDK steps)."""

from __future__ import annotations

import hashlib

import bson
import pytest
from panel_driver import PanelDriver

pytestmark = pytest.mark.integration

GT = "ground_truth"
PLUGIN = "@fiftyone-ntt/no-time-to-train"
USER_FIELDS = ("human", "gt_copy", "other_model", "note", "filepath", "metadata", "tags")
#: changed by any write to a sample, not data
SKIP = {"last_modified_at"}


def _fast():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


def snapshot(dataset) -> dict[str, str]:
    """``{field: sha256}`` over every top-level field of every sample document, in id order
    (fields added by a step show up as new keys)."""
    digests: dict[str, hashlib._Hash] = {}
    docs = list(dataset._sample_collection.find({}).sort("_id", 1))
    keys = sorted({k for doc in docs for k in doc} - SKIP)
    for key in keys:
        digest = digests.setdefault(key, hashlib.sha256())
        for doc in docs:
            digest.update(bson.encode({"v": doc.get(key)}))
    return {k: d.hexdigest() for k, d in digests.items()}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


class Steps:
    """Runs steps and checks which fields each changed."""

    def __init__(self, dataset):
        self.dataset = dataset

    def check(self, name, step, allowed=(), prefixes=(), raises=None):
        """Run ``step()``; the fields it changed must be within ``allowed`` (or start with
        one of ``prefixes``) and never a user field not in ``allowed``; with ``raises``
        (words), the step must fail saying them and change nothing."""
        before = snapshot(self.dataset)
        if raises is None:
            step()
        else:
            with pytest.raises(Exception) as info:
                step()
            for words in raises:
                assert words in str(info.value), (name, words, str(info.value))
        self.dataset.reload()
        diff = changed(before, snapshot(self.dataset))
        if raises is not None:
            assert diff == set(), f"{name}: refused, yet changed {sorted(diff)}"
            return diff
        unexpected = {k for k in diff if k not in allowed and not k.startswith(tuple(prefixes))}
        assert not unexpected, f"{name}: changed {sorted(unexpected)}"
        for field in USER_FIELDS:
            if field not in allowed:
                assert field not in diff, f"{name}: changed the user's field {field!r}"
        return diff


class _OtherModel:
    @staticmethod
    def make():
        import fiftyone as fo
        import fiftyone.core.models as fom

        class OtherModel(fom.Model):
            media_type = "image"
            has_logits = False
            has_embeddings = False
            ragged_batches = False
            transforms = None
            preprocess = False

            def predict(self, arg):
                return fo.Detections(detections=[fo.Detection(label="other")])

        return OtherModel()


@pytest.fixture
def dataset(painted_dataset):
    """The painted dataset plus the user's fields."""
    import fiftyone as fo

    dataset = painted_dataset
    values = {}
    for sample in dataset.skip(2).limit(3):
        values[sample.id] = fo.Detections(
            detections=[
                fo.Detection(label="person", bounding_box=d.bounding_box)
                for d in sample[GT].detections
            ]
        )
    dataset.set_values("human", values, key_field="id")
    dataset.clone_sample_field(GT, "gt_copy")
    dataset.apply_model(_OtherModel.make(), label_field="other_model")
    dataset.set_values("note", [f"note {i}" for i in range(len(dataset))])
    return dataset


USER_LABEL_FIELDS = ("human", "gt_copy", "other_model")
REFUSAL = ("already holds", "did not write", "overwrite")


def test_sdk_entry_points_leave_user_fields_alone(dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone import NTTModel, load_bank

    steps = Steps(dataset)
    steps.check("build bank", lambda: nf.build_bank(dataset, GT, "colours", config=_fast()))
    steps.check("segment", lambda: nf.segment(dataset, "colours", "ntt", progress=False), {"ntt"})
    steps.check("preview", lambda: nf.preview(dataset, "colours", n=3), {"ntt_preview"})
    model = NTTModel(load_bank(dataset, "colours"), _fast())
    steps.check("NTTModel.apply", lambda: model.apply(dataset, "ntt_model"), {"ntt_model"})
    steps.check(
        "evaluate", lambda: nf.evaluate(dataset, "ntt", "ev"), {"ntt", GT}, prefixes=("ev_",)
    )
    for field in USER_LABEL_FIELDS:
        steps.check(
            f"segment into {field}",
            lambda f=field: nf.segment(dataset, "colours", f, progress=False),
            raises=(repr(field), *REFUSAL),
        )
        steps.check(
            f"NTTModel.apply into {field}",
            lambda f=field: model.apply(dataset, f),
            raises=(repr(field), *REFUSAL),
        )
        steps.check(
            f"preview into {field}",
            lambda f=field: nf.preview(dataset, "colours", n=2, field=f),
            raises=(repr(field), "never overwrites"),
        )
    steps.check(
        "segment into note",
        lambda: nf.segment(dataset, "colours", "note"),
        raises=("note", "not Detections"),
    )
    # with an explicit overwrite, the replacement happens (and touches nothing else)
    diff = steps.check(
        "segment into human, overwrite",
        lambda: nf.segment(dataset, "colours", "human", overwrite=True, progress=False),
        {"human"},
    )
    assert diff == {"human"}
    diff = steps.check(
        "NTTModel.apply into other_model, overwrite",
        lambda: model.apply(dataset, "other_model", overwrite=True),
        {"other_model"},
    )
    assert diff == {"other_model"}


def _op(name, dataset, params=None, **ctx):
    import fiftyone.operators as foo

    def run():
        result = foo.execute_operator(
            f"{PLUGIN}/{name}", dataset=dataset, params=params or {}, **ctx
        )
        result.raise_exceptions()
        return result

    return run


def test_operators_leave_user_fields_alone(dataset):
    steps = Steps(dataset)
    build = {"gt_field": GT, "bank_key": "colours", "tag": "ntt:ref", "preset": "default"}
    seg = {"bank": "colours", "points_per_side": 16}
    steps.check("about", _op("ntt_about", dataset))
    sample = dataset.skip(2).first()
    selected = [{"label_id": sample[GT].detections[1].id, "sample_id": sample.id, "field": GT}]
    steps.check(
        "tag references",
        _op("ntt_tag_references", dataset, {"action": "tag"}, selected_labels=selected),
        {GT},
    )
    steps.check(
        "untag references",
        _op("ntt_tag_references", dataset, {"action": "untag"}, selected_labels=selected),
        {GT},
    )
    params = {"gt_field": GT, "shots": 1, "seed": 3, "one_per_image": True, "replace": True}
    steps.check("sample references", _op("ntt_sample_references", dataset, params), {GT})
    steps.check("build bank", _op("ntt_build_bank", dataset, build))
    steps.check("segment", _op("ntt_segment", dataset, {**seg, "out_field": "ntt"}), {"ntt"})
    steps.check(
        "evaluate",
        _op("ntt_evaluate", dataset, {"pred_field": "ntt", "gt_field": GT, "eval_key": "ev"}),
        {"ntt", GT},
        prefixes=("ev_",),
    )
    steps.check("manage banks", _op("ntt_manage_banks", dataset, {"action": "list"}))
    steps.check("runs", _op("ntt_runs", dataset, {"action": "show"}))
    for field in USER_LABEL_FIELDS:
        steps.check(
            f"segment into {field}",
            _op("ntt_segment", dataset, {**seg, "out_field": field}),
            raises=("Validation error", repr(field), *REFUSAL),
        )
        steps.check(
            f"segment into {field}, delegated",
            _op("ntt_segment", dataset, {**seg, "out_field": field}, request_delegation=True),
            raises=("Validation error", repr(field), *REFUSAL),
        )
    diff = steps.check(
        "segment into gt_copy, overwrite",
        _op("ntt_segment", dataset, {**seg, "out_field": "gt_copy", "overwrite": True}),
        {"gt_copy"},
    )
    assert diff == {"gt_copy"}


def test_panel_actions_leave_user_fields_alone(dataset):
    steps = Steps(dataset)
    panel = PanelDriver(dataset)
    steps.check("open", lambda: panel.call("on_load"))
    steps.check("build", lambda: panel.call("build"))
    steps.check("preview", lambda: panel.call("preview_view"), {"ntt_preview"})
    label = dataset.exists("ntt_preview").first()["ntt_preview"].detections[0]
    panel.selected_labels = [
        {"label_id": label.id, "sample_id": dataset.exists("ntt_preview").first().id,
         "field": "ntt_preview"}
    ]  # fmt: skip
    steps.check("accept", lambda: panel.call("accept"), {"ntt_preview"})
    steps.check("preview again", lambda: panel.call("preview_view"), {"ntt_preview", "ntt_curated"})
    panel.selected_labels = []
    steps.check("segment prompt", lambda: panel.call("segment_view"))
    # the prompt opens the Segment form; run it as the App would, into a new field
    bank = panel.state.get("bank") or "ground_truth-refs"
    steps.check(
        "segment",
        _op("ntt_segment", dataset, {"bank": bank, "out_field": "ntt", "points_per_side": 16}),
        {"ntt"},
    )
    panel.call("on_refresh")
    steps.check("show run", lambda: panel.call("run_show", row=0))
    steps.check(
        "evaluate run",
        lambda: panel.call("run_evaluate", row=0),
        {"ntt", GT},
        prefixes=("eval_",),
    )
