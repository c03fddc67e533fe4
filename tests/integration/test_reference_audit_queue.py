"""The reference audit and the review queue against a real MongoDB with the fake models
(issue 23 §2, §3): a planted bad reference is ranked first; the planted ambiguous
prediction heads the saved view "to review"."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

GT = "ground_truth"
#: sample 3's unlabelled yellow distractor, labelled "blue" and tagged as a reference
BAD_BOX = (60, 5, 90, 30)


def _plant_bad_reference(dataset):
    import fiftyone as fo
    from ntt_painted import IMAGE_SIZE

    height, width = IMAGE_SIZE
    x1, y1, x2, y2 = BAD_BOX
    sample = dataset.skip(3).first()
    bad = fo.Detection(
        label="blue",
        bounding_box=[x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height],
        mask=np.ones((y2 - y1, x2 - x1), dtype=bool),
        tags=["ntt:ref"],
    )
    sample.ground_truth.detections.append(bad)
    sample.save()
    return bad.id


def test_the_audit_ranks_a_planted_bad_reference_first(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.banks.audit import reference_audit
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset = painted_dataset
    bad_id = _plant_bad_reference(dataset)
    config = NTTConfig(points_per_side=16, keep_features=True)
    nf.build_bank(dataset, GT, "colours", config=config)
    nf.segment(dataset, "colours", "ntt")
    evaluate(dataset, "ntt", "ev", gt_field=GT, exclude_references=True)

    audit = reference_audit(dataset, "ev", "colours")
    first = audit["rows"][0]
    assert first["reference_id"] == bad_id and first["field"] == GT
    # it attracts the false positives (the yellow distractors segmented as blue), no true
    # positive; leaving out the other blue reference would cost precision. (Its own harm is
    # 0 here: on flat colours the false positives already rank just below the true ones;
    # tests/unit/test_curation.py plants one that outranks them.)
    assert first["nearest_fp"] > 0 and first["nearest_tp"] == 0
    assert first["false_positives"] and len(first["false_positives"]) == first["nearest_fp"]
    good_blue = next(r for r in audit["rows"] if r["class_name"] == "blue" and r is not first)
    assert good_blue["nearest_fp"] == 0 and good_blue["harm"] < first["harm"]
    assert audit["missing_features"] == 0 and "1 attract false positives" in audit["message"]


def test_the_audit_needs_stored_features(painted_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.fiftyone.banks.audit import reference_audit
    from fiftyone_ntt.fiftyone.evaluation.evaluate import evaluate

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=16))
    nf.segment(dataset, "colours", "ntt")
    evaluate(dataset, "ntt", "ev", gt_field=GT)
    with pytest.raises(ValueError, match=r"holds its feature.*embeddings=True"):
        reference_audit(dataset, "ev", "colours")


def test_the_review_queue_puts_the_planted_ambiguous_prediction_first(painted_dataset):
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.config import NTTConfig
    from fiftyone_ntt.embeddings import compact
    from fiftyone_ntt.fiftyone.banks.index import load_bank
    from fiftyone_ntt.fiftyone.banks.review import REVIEW_VIEW, review_queue
    from fiftyone_ntt.fiftyone.banks.thresholds import save_thresholds

    dataset = painted_dataset
    nf.build_bank(dataset, GT, "colours", config=NTTConfig(points_per_side=16))
    save_thresholds(dataset, "colours", {"red": 0.5, "green": 0.5}, source="by hand")
    protos = load_bank(dataset, "colours").prototypes().numpy()
    mixed = (protos[0] + protos[1]) / np.linalg.norm(protos[0] + protos[1])

    def det(label, score, vector, tags=()):
        return fo.Detection(
            label=label,
            confidence=score,
            bounding_box=[0.1, 0.1, 0.2, 0.2],
            ntt_embedding=compact(vector[None])[0],
            tags=list(tags),
        )

    planted = None
    for i, sample in enumerate(dataset):
        dets = [det("red", 0.95, protos[0]), det("green", 0.9, protos[1])]
        if i == 5:
            planted = det("red", 0.52, mixed)  # near its threshold, halfway to green
            dets.insert(1, planted)
        if i == 2:  # already decided: left out
            dets.append(det("red", 0.5, mixed, tags=["ntt:neg"]))
        sample["preds"] = fo.Detections(detections=dets)
        sample.save()

    queue = review_queue(dataset, "preds", "colours")
    assert queue["label_ids"][0] == planted.id
    assert len(queue["label_ids"]) == 2 * len(dataset) + 1  # the decided one left out
    assert queue["scores"] == sorted(queue["scores"], reverse=True)
    view = dataset.load_saved_view(REVIEW_VIEW)
    assert view.first()["preds"].id == planted.id
    assert len(view) == len(queue["label_ids"])

    # the user's own view of that name is not replaced without overwrite
    dataset.save_view(REVIEW_VIEW, dataset.limit(1), overwrite=True)
    with pytest.raises(ValueError, match=r"saved view 'to review' of its own.*overwrite=True"):
        review_queue(dataset, "preds", "colours")
    assert len(dataset.load_saved_view(REVIEW_VIEW)) == 1
    review_queue(dataset, "preds", "colours", overwrite=True)
    assert dataset.load_saved_view(REVIEW_VIEW).first()["preds"].id == planted.id
