"""The plan of a segmentation run, before anything loads or is written
(:func:`plan_segment`): the request checked, the settings resolved, the bank, the state of
the output field, the target counts and the device, with every problem found worded.

The *Segment* form draws its checks from this plan and the run
(:func:`~fiftyone_ntt.fiftyone.runs.job.segment`, which the operator, the SDK and the CLI's
protocols call) starts from it and refuses its first problem, so the form and the run
cannot disagree: they are the same function. The identities of the loaded weights are
checked by the run only (they need the models loaded).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.fiftyone.banks.index import bank_versions, get_bank_info, list_banks, load_bank
from fiftyone_ntt.fiftyone.curation.references import (
    check_image_collection,
    reference_sample_ids,
)
from fiftyone_ntt.fiftyone.dataset.fields import RUN_METHOD
from fiftyone_ntt.fiftyone.runs.output_field import check_output_field, reload_schema
from fiftyone_ntt.fiftyone.runs.settings import check_device, recorded_settings, resolve_settings
from fiftyone_ntt.fiftyone.runs.shards import check_shard
from fiftyone_ntt.fiftyone.runs.video_loop import check_video_request, frame_counts, is_video
from fiftyone_ntt.tracking import check_keyframe_every

__all__ = [
    "Problem",
    "SegmentPlan",
    "check_batch_images",
    "other_run_error",
    "output_conflict",
    "plan_segment",
    "propose_output_field",
    "segment_counts",
]

#: The parts of a request a problem can be about, in the order the run checks them (the
#: run raises the first problem of this order).
STAGES = (
    "shard",
    "batch_images",
    "collection",
    "keyframe_every",
    "bank",
    "out_field",
    "device",
    "settings",
)
#: Output field states: no run under the key; a run of these settings (a rerun resumes it);
#: a run of another bank or other settings (``conflict`` says which); refused
#: (:func:`~fiftyone_ntt.fiftyone.runs.output_field.check_output_field`: a bad name, the
#: ground truth, labels No Time to Train did not write, ...).
OUTPUT_STATES = ("free", "resumable", "other_run", "refused")


@dataclass(frozen=True)
class Problem:
    """One reason the run cannot start: the request parameter it is about (one of
    :data:`STAGES`) and the error the run raises for it."""

    field: str
    error: Exception

    @property
    def message(self) -> str:
        """The error's words (a KeyError's without the quotes ``str`` adds)."""
        if isinstance(self.error, KeyError) and self.error.args:
            return str(self.error.args[0])
        return str(self.error)


@dataclass(frozen=True)
class SegmentPlan:
    """What :func:`plan_segment` found: everything a run needs before its models load.

    ``collection``: the target (the images of a patches view); ``bank``: the loaded
    :class:`~fiftyone_ntt.memory_bank.MemoryBank` (None when it could not be loaded);
    ``bank_info``: its index entry (None for a bank object); ``out_field``: the field to
    write (a frame field name on videos); ``output_state``: one of :data:`OUTPUT_STATES`,
    ``conflict`` the sentence saying which other run holds the field; ``config``: the
    resolved settings (None when they could not be resolved); ``device``: the checked device
    name (``"auto"``, ``"cpu"``, ``"cuda:0"``, ...); ``counts``: ``total``, ``references``
    (left out when ``skip_references``: their ground truth holds the bank's references),
    ``to_segment`` (frames on videos, plus ``videos`` and ``unit``), None without a bank;
    ``problems``: in the order the run checks them.
    """

    collection: Any
    bank_key: str | None
    bank: Any
    bank_info: dict[str, Any] | None
    out_field: Any
    gt_field: str | None
    video: bool
    overwrite: bool
    skip_references: bool
    shard: tuple[int, int] | None
    batch_images: int | None
    device: str
    config: NTTConfig | None
    output_state: str
    conflict: str | None
    counts: dict[str, Any] | None
    problems: tuple[Problem, ...]
    #: No Time to Train on every K-th frame of a video, SAM 2 tracking between (1: all)
    keyframe_every: int = 1

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, field: str) -> str | None:
        """The words of the first problem about ``field``, or None."""
        return next((p.message for p in self.problems if p.field == field), None)

    def raise_first(self) -> None:
        """Raise the first problem's error (the run's refusal), if any."""
        if self.problems:
            raise self.problems[0].error

    def with_output(self, out_field: str, overwrite: bool = False) -> SegmentPlan:
        """The same plan writing to ``out_field`` (the form's *new field* or *overwrite*
        choice): its output state and problems checked again."""
        state, conflict, found = _output_state(self, out_field, overwrite)
        kept = [p for p in self.problems if p.field != "out_field"]
        return dataclasses.replace(
            self,
            out_field=out_field,
            overwrite=overwrite,
            output_state=state,
            conflict=conflict,
            problems=_ordered(kept + found),
        )


def plan_segment(
    collection: Any,
    bank: Any,
    out_field: Any,
    *,
    config: NTTConfig | None = None,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    points_per_side: int | None = None,
    embeddings: bool | None = None,
    skip_references: bool = True,
    overwrite: bool = False,
    device: str | None = None,
    shard: Any = None,
    batch_images: Any = None,
    keyframe_every: Any = 1,
) -> SegmentPlan:
    """Plan segmenting ``collection`` with ``bank`` (a key of the dataset's banks, or a
    :class:`~fiftyone_ntt.memory_bank.MemoryBank`) into ``out_field``; the arguments are
    :func:`~fiftyone_ntt.fiftyone.runs.job.segment`'s. Loads the bank, never the models;
    raises nothing for a bad request: each problem is in ``problems``."""

    problems: list[Problem] = []
    dataset = collection._root_dataset
    reload_schema(dataset)  # fields and runs another process added since it was loaded
    shard = _checked(problems, "shard", check_shard, shard)
    batch_images = _checked(problems, "batch_images", check_batch_images, batch_images)
    video = is_video(collection)
    usable = True
    try:
        if video:
            out_field = check_video_request(collection, out_field)
        else:
            check_image_collection(collection)
    except ValueError as error:
        problems.append(Problem("collection", error))
        usable = False
    keyframe_every = _checked(problems, "keyframe_every", check_keyframe_every, keyframe_every)
    if keyframe_every and keyframe_every > 1 and not video:
        problems.append(
            Problem(
                "keyframe_every",
                ValueError(
                    f"keyframe_every={keyframe_every}: keyframes are for video collections; "
                    "leave it at 1 for images"
                ),
            )
        )

    bank_key, info = None, None
    if bank is None or isinstance(bank, str):
        bank_key, bank, info = bank, None, None
        try:
            info = _bank_info(dataset, bank_key)
            bank = load_bank(dataset, bank_key)
        except (KeyError, ValueError) as error:
            problems.append(Problem("bank", error))
    metadata = bank.metadata if bank is not None else (info or {})
    gt_field = metadata.get("gt_field")

    checked = _checked(problems, "device", check_device, device)
    device = checked or "auto"
    resolved = None
    try:
        resolved = resolve_settings(
            metadata.get("config"),
            config,
            score_threshold,
            max_detections,
            points_per_side,
            None if device == "auto" else device,
            embeddings,
        )
    except (TypeError, ValueError) as error:
        problems.append(Problem("settings", error))

    target = collection
    if usable and getattr(collection, "_is_patches", False):
        # a patches view: segment the images its patches come from
        target = dataset.select(collection.distinct("sample_id"))
    counts = None
    if usable and bank is not None:
        if video:
            counts = frame_counts(target, bank_key, skip_references)
        else:
            counts = _image_counts(target, bank, gt_field, skip_references)

    plan = SegmentPlan(
        collection=target,
        bank_key=bank_key,
        bank=bank,
        bank_info=info,
        out_field=out_field,
        gt_field=gt_field,
        video=video,
        overwrite=bool(overwrite),
        skip_references=bool(skip_references),
        shard=shard,
        batch_images=batch_images,
        device=device,
        config=resolved,
        output_state="free",
        conflict=None,
        counts=counts,
        problems=(),
        keyframe_every=keyframe_every or 1,
    )
    return dataclasses.replace(plan, problems=_ordered(problems)).with_output(
        out_field, bool(overwrite)
    )


def check_batch_images(value: Any) -> int | None:
    """``value`` if it is a positive integer or None (the device's default)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"batch_images={value!r} must be a positive integer (images per model call, "
            "e.g. 1 on CPU, 4 to 16 on a GPU), or None for the device's default"
        )
    return value


def other_run_error(out_field: str) -> ValueError:
    """The run's refusal of a field holding the predictions of another run."""
    return ValueError(
        f"field {out_field!r} holds predictions of another run (other bank or "
        "settings); choose another output field, or overwrite to replace them"
    )


def _checked(problems: list[Problem], field: str, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ValueError as error:
        problems.append(Problem(field, error))
        return None


def _ordered(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda p: STAGES.index(p.field)))


def _bank_info(dataset: Any, bank_key: str | None) -> dict[str, Any]:
    """The index entry of bank ``bank_key`` (KeyError: no such bank, or none at all)."""
    if not bank_key:
        if not list_banks(dataset):
            raise KeyError(
                f"dataset {dataset.name!r} has no memory bank yet; build one first ('Build "
                "memory bank' in the App, or build_bank)"
            )
        raise KeyError("no memory bank chosen; pass the key of one (see list_banks)")
    return get_bank_info(dataset, bank_key)


def _output_state(
    plan: SegmentPlan, out_field: Any, overwrite: bool
) -> tuple[str, str | None, list[Problem]]:
    """(state, conflict, problems) of writing ``out_field``."""
    collection = plan.collection
    try:
        check_output_field(
            collection, out_field, plan.gt_field, frames=plan.video, overwrite=overwrite
        )
    except ValueError as error:
        return "refused", None, [Problem("out_field", error)]
    dataset = collection._root_dataset
    if out_field not in dataset.list_runs():
        return "free", None, []
    if plan.bank is None or plan.bank_info is None or plan.config is None:
        return "resumable", None, []  # only the run can tell (by its fingerprint)
    conflict = _conflict(dataset, out_field, plan.bank_key, plan.bank_info, plan.config)
    if conflict is None:
        return "resumable", None, []
    return (
        "other_run",
        conflict,
        [] if overwrite else [Problem("out_field", other_run_error(out_field))],
    )


def output_conflict(
    collection: Any,
    out_field: str,
    bank_key: str | None,
    *,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    points_per_side: int | None = None,
    embeddings: bool | None = None,
) -> str | None:
    """Why segmenting into ``out_field`` with ``bank_key`` and these settings would meet the
    predictions of another run (so a rerun cannot resume), or None.

    Another run: one made with another bank (key or content) or other settings, the
    configured models included (the settings are resolved as the run resolves them:
    :func:`~fiftyone_ntt.fiftyone.runs.settings.resolve_settings`). The identities of the
    loaded weights are checked only when the run executes (they need the models loaded).
    """

    dataset = collection._root_dataset
    if not out_field or out_field not in dataset.list_runs() or not bank_key:
        return None
    try:
        bank = get_bank_info(dataset, bank_key)
    except KeyError:
        return None
    wanted = resolve_settings(
        bank.get("config"),
        score_threshold=score_threshold,
        max_detections=max_detections,
        points_per_side=points_per_side,
        embeddings=embeddings,
    )
    return _conflict(dataset, out_field, bank_key, bank, wanted)


def _conflict(
    dataset: Any, out_field: str, bank_key: str | None, bank: dict[str, Any], config: NTTConfig
) -> str | None:
    """:func:`output_conflict` with the bank's index entry and the resolved settings."""
    if not bank_key:
        return None
    recorded = dataset.get_run_info(out_field).config
    if recorded.method != RUN_METHOD:
        return None  # check_output_field words this one
    previous_bank = getattr(recorded, "bank_key", None)
    if previous_bank != bank_key or getattr(recorded, "bank_fingerprint", None) != bank.get(
        "fingerprint"
    ):
        what = (
            f"bank {previous_bank!r}"
            if previous_bank != bank_key
            else _other_build(dataset, bank_key, recorded, bank)
        )
        return f"field {out_field!r} holds the predictions of a run with {what}"
    previous = recorded_settings(getattr(recorded, "ntt_config", None) or {})
    wanted = recorded_settings(config)
    changed = sorted(k for k in wanted if k != "models" and previous.get(k) != wanted[k])
    previous_models, wanted_models = previous.get("models") or {}, wanted["models"]
    changed += sorted(
        f"models.{k}"
        for k in wanted_models.keys() | previous_models.keys()
        if previous_models.get(k) != wanted_models.get(k)
    )
    if changed:
        detail = ", ".join(
            f"{k}: {_value(previous, k)!r} -> {_value(wanted, k)!r}" for k in changed
        )
        return f"field {out_field!r} holds the predictions of a run with other settings ({detail})"
    return None


def _value(settings: Mapping[str, Any], key: str) -> Any:
    """``settings[key]``, or ``settings["models"][name]`` for ``key`` ``"models.<name>"``."""
    if key.startswith("models."):
        return (settings.get("models") or {}).get(key[len("models.") :])
    return settings.get(key)


def _other_build(dataset: Any, bank_key: str, config: Any, bank: dict[str, Any]) -> str:
    """Which build of bank ``bank_key`` a run used, when not its latest version: an
    earlier version still listed (``"an earlier version (v1) of bank 'k' (now v2)"``), or
    one deleted since (a key deleted and built again starts at v1 once more)."""

    fingerprint = getattr(config, "bank_fingerprint", None)
    now = f"v{bank.get('version', 1)}"
    recorded = getattr(config, "bank_version", None)
    same = [e for e in bank_versions(dataset, bank_key) if e.get("fingerprint") == fingerprint]
    # versions of the same content share a fingerprint: the one the run recorded first
    same.sort(key=lambda e: e.get("version") != recorded)
    if fingerprint and same:
        return f"an earlier version (v{same[0]['version']}) of bank {bank_key!r} (now {now})"
    return (
        f"a build of bank {bank_key!r} that was deleted since (the current {bank_key!r} "
        f"{now} is another build)"
    )


def propose_output_field(collection: Any, base: str, bank_key: str | None = None) -> str:
    """A field name that is neither a field nor a run key of the dataset:
    ``<base>_<bank>_v2``, ``_v3``, ... (the bank key made a valid identifier)."""
    dataset = collection._root_dataset
    stem = base
    if bank_key:
        suffix = re.sub(r"[^0-9A-Za-z]+", "_", bank_key).strip("_").lower()
        if suffix:
            stem = f"{base}_{suffix}"
    stem = re.sub(r"_{2,}", "_", stem)
    taken = set(dataset.get_field_schema()) | set(dataset.list_runs())
    if dataset.media_type == "video":
        taken |= set(dataset.get_frame_field_schema() or {})
    version = 2
    while f"{stem}_v{version}" in taken:
        version += 1
    return f"{stem}_v{version}"


def segment_counts(
    collection: Any, bank_key: str | None, skip_references: bool = True
) -> dict[str, int]:
    """``total`` target samples, ``references`` (those whose ground-truth field holds one of
    the bank's references: :func:`~fiftyone_ntt.fiftyone.curation.references.reference_sample_ids`,
    skipped when ``skip_references``) and ``to_segment``, as :func:`plan_segment` counts
    them; on a video collection counted in frames, plus ``videos`` and ``unit``
    (``"frames"``)."""

    if is_video(collection):
        return frame_counts(collection, bank_key, skip_references)
    bank = gt_field = None
    if skip_references and bank_key:
        dataset = collection._root_dataset
        gt_field = get_bank_info(dataset, bank_key).get("gt_field")
        if gt_field and dataset.has_sample_field(gt_field):
            bank = load_bank(dataset, bank_key)
    target = collection
    if getattr(collection, "_is_patches", False):
        target = collection._root_dataset.select(collection.distinct("sample_id"))
    return _image_counts(target, bank, gt_field, skip_references)


def _image_counts(
    target: Any, bank: Any, gt_field: str | None, skip_references: bool
) -> dict[str, int]:
    total = len(target)
    skipped = 0
    dataset = target._root_dataset
    if skip_references and bank is not None and gt_field and dataset.has_sample_field(gt_field):
        ids = set(reference_sample_ids(dataset, gt_field, label_ids=bank.reference_ids))
        skipped = len(ids & set(target.values("id"))) if ids else 0
    return {"total": total, "references": skipped, "to_segment": total - skipped}
