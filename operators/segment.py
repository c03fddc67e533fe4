"""``ntt_segment``: segment the bank's classes in the target samples."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from fiftyone_ntt.fiftyone.runs.shards import queue_shards

from ._forms import (
    DELEGATE_ABOVE_SAMPLES,
    bank_choice,
    bank_models_line,
    default_bank,
    delegation,
    device_field,
    error_output,
    invalid,
    progress_reporter,
    reported,
    schedule_notice,
    table,
    target_size,
    test_models_notice,
)
from ._numbers import number_field

OUT_DEFAULT = "ntt_predictions"


class NTTSegment(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="ntt_segment",
            label="NTT 4 · Segment",
            description=(
                "4 · Segments the classes of a memory bank in the target samples (SAM 2 "
                "proposals matched to the bank); resumable; records a run per output field"
            ),
            icon="auto_awesome",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_delegation(self, ctx):
        # splitting only queues the shards: instant, so never delegated itself
        if _num_shards(ctx) > 1 and ctx.params.get("shard") is None:
            return False
        # large targets go to a delegated worker where FiftyOne offers scheduling
        size, limit, _unit = _delegation_size(ctx)
        return delegation(size, limit)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Segment")
        test_models_notice(inputs)
        bank_key, bank_prop, banks = bank_choice(inputs, ctx)
        video = _is_video(ctx)
        out_field = _field_name(ctx.params.get("out_field", OUT_DEFAULT), video)
        out_prop = inputs.str(
            "out_field",
            default=OUT_DEFAULT,
            label="Output field",
            description=(
                f"Frame field: the predictions go to frames.{out_field or '<field>'}, one "
                "Detections per frame (the name is also the run key)"
                if video
                else "Detections field for the predictions (also the run key)"
            ),
        )
        if video:
            inputs.view(
                "video_notice",
                types.Notice(
                    label=f"Video dataset: every frame of the target videos is segmented; "
                    f"predictions go to frames.{out_field or '<field>'}"
                ),
            )
        bank_models_line(inputs, next((b for b in banks if b["key"] == bank_key), None))
        _resume_notice(inputs, ctx, out_field)
        # the run's own plan: what the form shows is what the run checks
        target = _target(ctx)
        plan = _plan(ctx, ctx.dataset if target is None else target, bank_key, out_field)
        if plan.output_state == "refused":
            invalid(inputs, out_prop, "out_field", plan.problem("out_field"))
        elif plan.output_state == "other_run" and not plan.overwrite:
            _conflict_choice(inputs, ctx, plan)
        if video:
            _keyframes_field(inputs, ctx, plan)
        number_field(
            inputs,
            "score_threshold",
            ctx.params.get("score_threshold"),
            integer=False,
            min=0.0,
            max=1.0,
            default=None,
            label="Score threshold",
            description="Drop detections scoring below this; empty keeps all (the paper)",
        )
        number_field(
            inputs,
            "max_detections",
            ctx.params.get("max_detections"),
            default=100,
            min=1,
            label="Max detections per image",
        )
        unit = "frames" if video else "samples"
        inputs.bool(
            "skip_references",
            default=True,
            label=f"Skip reference {unit}",
            description=f"Do not segment the {'frames' if video else 'images'} whose ground "
            "truth holds the bank's references (an accepted prediction does not skip its "
            "image); evaluation leaves the same ones out",
        )
        inputs.bool(
            "embeddings",
            default=False,
            label="Keep features (for the map)",
            description="Store each prediction's semantic feature (ntt_embedding, float16), "
            "for 'Map predictions' and 'More like this'; the predictions are the same either "
            "way. On when opened from the panel",
        )
        inputs.bool(
            "overwrite",
            default=False,
            label="Overwrite",
            description=f"Recompute {unit} already done (otherwise a rerun resumes), and "
            "replace labels in the output field that No Time to Train did not write",
        )
        number_field(
            inputs,
            "batch_size",
            ctx.params.get("batch_size"),
            default=16,
            min=1,
            label=f"{unit.title()} per database write",
        )
        if not video:
            _image_batching(inputs, ctx)
        _shards_field(inputs, ctx, video)
        device_field(inputs, ctx, plan.problem("device"))
        number_field(
            inputs,
            "points_per_side",
            ctx.params.get("points_per_side"),
            default=None,
            min=1,
            label="Points per side (advanced)",
            description="SAM 2 prompt grid; empty: the bank's setting (32, the paper)",
        )
        if plan.problem("bank"):
            invalid(inputs, bank_prop, "bank", plan.problem("bank"))
        elif target is not None and plan.counts is not None:
            _target_counts(inputs, ctx, plan.counts)
        schedule_notice(inputs, *_delegation_size(ctx))
        return types.Property(inputs, view=types.View(label="Segment with a memory bank"))

    @reported
    def execute(self, ctx):
        # deferred: torch loads when a run first needs it, not when FiftyOne imports the plugin
        from fiftyone_ntt.fiftyone.runs.job import run_plan

        params = ctx.params
        bank_key = params.get("bank") or default_bank(ctx)
        target = ctx.target_view()
        out_field = _field_name(params.get("out_field") or OUT_DEFAULT, _is_video(ctx))
        shard = params.get("shard")
        plan = _chosen_output(ctx, _plan(ctx, target, bank_key, out_field, shard=shard))
        if shard is None and _num_shards(ctx) > 1:
            plan.raise_first()
            return _queue_shards(ctx, target, plan)
        summary = run_plan(
            plan,
            batch_size=int(params.get("batch_size") or 16),
            prefetch=int(params.get("prefetch") if params.get("prefetch") is not None else 2),
            progress=progress_reporter(
                ctx, "frames segmented" if _is_video(ctx) else "samples segmented"
            ),
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return summary

    def resolve_output(self, ctx):
        failed = error_output(ctx, "Segmentation not done")
        if failed is not None:
            return failed
        outputs = types.Object()
        if (ctx.results or {}).get("queued"):
            return _queued_output(outputs)
        frames = (ctx.results or {}).get("unit") == "frames"
        unit = "frames" if frames else "samples"
        outputs.str("out_field", label="Output field" if frames else "Output field (run key)")
        outputs.str("bank_key", label="Memory bank")
        if frames:
            outputs.int("videos", label="Videos in the target")
        outputs.int("total", label=f"{unit.title()} to segment in the target")
        outputs.int("references_skipped", label=f"Reference {unit} skipped")
        outputs.int("done_before", label="Already done (resumed)")
        outputs.int("processed", label="Segmented now")
        outputs.int("detections", label="Detections written")
        outputs.int(
            "failed",
            label="Skipped (undecodable frame or out of memory)"
            if frames
            else "Skipped (unreadable image or out of memory)",
        )
        if (ctx.results or {}).get("failures"):
            columns = {"sample_id": "sample", "filepath": "file", "error": "why"}
            if frames:
                columns = {"sample_id": "sample", "frame_number": "frame", **columns}
            table(outputs, "failures", f"Skipped {unit}", columns)
        outputs.float("seconds", label="Seconds")
        return types.Property(outputs, view=types.View(label="Segmentation done"))


def _resume_notice(inputs, ctx, out_field) -> None:
    """Opened by the panel's *Resume*: the interrupted run's settings are filled in; say so
    (changing one makes it another run, which the form then treats as such)."""
    if not ctx.params.get("resume"):
        return
    inputs.bool("resume", default=True, view=types.HiddenView())
    settings = ", ".join(
        f"{label} {ctx.params[key]}"
        for key, label in (
            ("points_per_side", "points per side"),
            ("score_threshold", "score threshold"),
            ("max_detections", "max detections"),
        )
        if ctx.params.get(key) is not None
    )
    inputs.view(
        "resume_notice",
        types.Notice(
            label=f"Resuming the interrupted run into {out_field!r} with its own settings "
            f"(bank {ctx.params.get('bank')!r}{', ' + settings if settings else ''}): the "
            "samples it finished are skipped. Changing a setting starts another run."
        ),
    )


def _target(ctx):
    """The target view, or None while the form is being filled in (no valid target yet)."""
    try:
        return ctx.target_view()
    except Exception:
        return None


def _plan(ctx, collection, bank_key, out_field, shard=None):
    """The run's plan (:func:`~fiftyone_ntt.fiftyone.runs.plan.plan_segment`) of the
    form's parameters."""
    # deferred: torch (the plan imports the loops) loads when a form first needs it, not
    # when FiftyOne imports the plugin
    from fiftyone_ntt.fiftyone.runs.plan import plan_segment

    params = ctx.params
    return plan_segment(
        collection,
        bank_key,
        out_field,
        **_settings(params),
        skip_references=bool(params.get("skip_references", True)),
        overwrite=bool(params.get("overwrite", False)),
        device=params.get("device"),
        shard=None if shard is None else tuple(shard),
        batch_images=params.get("batch_images"),
        keyframe_every=1 if params.get("keyframe_every") is None else params["keyframe_every"],
        embeddings=params.get("embeddings"),
    )


def _settings(params) -> dict:
    """The form's settings; a value that is not a number is left out (its field says so)."""
    settings = {}
    for key, kind in (
        ("score_threshold", float),
        ("max_detections", int),
        ("points_per_side", int),
    ):
        value = params.get(key)
        try:
            settings[key] = None if value is None else kind(value)
        except (TypeError, ValueError):
            settings[key] = None
    return settings


def _conflict_choice(inputs, ctx, plan) -> None:
    """When the output field holds predictions of another run: the choice between a new
    field (proposed) and overwriting them, before anything runs."""
    # deferred: torch (the plan imports the loops)
    from fiftyone_ntt.fiftyone.runs.plan import propose_output_field

    out_field = plan.out_field
    inputs.view(
        "conflict_notice",
        types.Warning(
            label="The output field is taken",
            description=f"{plan.conflict}: a rerun cannot resume it. Write to a new field, or "
            "overwrite those predictions.",
        ),
    )
    choices = types.RadioGroup()
    choices.add_choice("new_field", label="Write to a new field")
    choices.add_choice("overwrite", label=f"Overwrite the predictions in {out_field!r}")
    inputs.enum("on_conflict", choices.values(), default="new_field", label="Then", view=choices)
    if ctx.params.get("on_conflict", "new_field") == "new_field":
        proposed = propose_output_field(ctx.dataset, out_field, plan.bank_key)
        new_prop = inputs.str(
            "new_field",
            default=proposed,
            label="New output field",
            description="A field that does not exist yet (also the run key)",
        )
        new = _chosen_output(ctx, plan)
        if new.output_state == "other_run":
            invalid(inputs, new_prop, "new_field", f"{new.conflict}; choose another name")
        elif new.output_state == "refused":
            invalid(inputs, new_prop, "new_field", new.problem("out_field"))


def _chosen_output(ctx, plan):
    """The plan writing where the form's choice says: the output field, or, when it holds
    another run's predictions, the new field or the overwrite the form offered."""
    # deferred: torch (the plan imports the loops)
    from fiftyone_ntt.fiftyone.runs.plan import propose_output_field

    params = ctx.params
    if plan.overwrite or plan.output_state != "other_run":
        return plan
    if params.get("on_conflict") == "overwrite":
        return plan.with_output(plan.out_field, overwrite=True)
    proposed = propose_output_field(ctx.dataset, plan.out_field, plan.bank_key)
    return plan.with_output(params.get("new_field") or proposed)


def _target_counts(inputs, ctx, counts: dict) -> None:
    """ "N samples, M hold references and are skipped: K will be segmented"; refuse K = 0."""
    skip = bool(ctx.params.get("skip_references", True))
    n, m, k = counts["total"], counts["references"], counts["to_segment"]
    if counts.get("unit") == "frames":
        text = f"{counts['videos']} video(s), {n} frame(s) in the target"
    else:
        text = f"{n} sample(s) in the target"
    if skip:
        text += f", {m} hold the bank's references and are skipped"
    text += f": {k} will be segmented"
    prop = inputs.int("to_segment", default=k, view=types.HiddenView())
    if k == 0:
        invalid(
            inputs,
            prop,
            "to_segment",
            text + ". Nothing to segment: choose a target without the reference images "
            "(e.g. the whole dataset), or untick 'Skip reference samples'",
            box=True,
        )
    else:
        inputs.view("target_notice", types.Notice(label=text))


def _keyframes_field(inputs, ctx, plan) -> None:
    """Videos: No Time to Train on every K-th frame, SAM 2 tracking between (issue 25)."""
    prop = number_field(
        inputs,
        "keyframe_every",
        ctx.params.get("keyframe_every"),
        default=1,
        min=1,
        label="Keyframe every K frames",
        description="1: every frame is segmented. K > 1: No Time to Train runs on every K-th "
        "frame and SAM 2's video memory carries its detections between, each with its track "
        "id (Detection.index: the App colours by instance)",
    )
    if plan.problem("keyframe_every") and not getattr(prop, "invalid", False):
        invalid(inputs, prop, "keyframe_every", plan.problem("keyframe_every"))


def _image_batching(inputs, ctx) -> None:
    """The inputs that only images have (frames are decoded and segmented one by one, in
    one run)."""
    number_field(
        inputs, "prefetch", ctx.params.get("prefetch"), default=2, min=0, label="Images read ahead"
    )
    number_field(
        inputs,
        "batch_images",
        ctx.params.get("batch_images"),
        default=None,
        min=1,
        label="Images per model call",
        description="Empty: 1 on CPU, 4 on a GPU; more uses more GPU memory",
    )


def _shards_field(inputs, ctx, video: bool) -> None:
    """N delegated tasks, one per shard of the target (of whole videos on a video dataset:
    a video's tracks are made by one worker)."""
    number_field(
        inputs,
        "num_shards",
        ctx.params.get("num_shards"),
        default=1,
        min=1,
        label="Split into N delegated tasks",
        description=(
            "N > 1 queues N delegated operations, one per shard of the target"
            + (" (each a set of whole videos)" if video else "")
            + ", for N workers (`CUDA_VISIBLE_DEVICES=k fiftyone delegated launch`, one per "
            "GPU or machine, same database); they write the same field"
        ),
    )


def _is_video(ctx) -> bool:
    return getattr(ctx.dataset, "media_type", None) == "video"


def _field_name(name, video: bool):
    """On a video dataset the output is a frame field: ``frames.`` is optional."""
    if video and isinstance(name, str) and name.startswith("frames."):
        return name[len("frames.") :]
    return name


def _delegation_size(ctx) -> tuple[int, int, str]:
    """(size, limit, unit) of the target for :func:`delegation`: frames of a video target,
    samples otherwise."""
    if _is_video(ctx):
        return _frame_total(ctx), DELEGATE_ABOVE_SAMPLES, "frames"
    return target_size(ctx), DELEGATE_ABOVE_SAMPLES, "samples"


def _frame_total(ctx) -> int:
    # deferred: torch (the video loop imports it)
    from fiftyone_ntt.fiftyone.runs.video_loop import frame_counts

    try:
        return frame_counts(ctx.target_view(), None)["total"]
    except Exception:  # a form being filled in: no valid target yet
        return 0


def _num_shards(ctx) -> int:
    try:
        return max(1, int(ctx.params.get("num_shards") or 1))
    except (TypeError, ValueError):
        return 1


def _queue_shards(ctx, target, plan) -> dict:
    """Queue one delegated operation per shard (N workers run them in parallel)."""
    params = ctx.params
    keep = ("score_threshold", "max_detections", "points_per_side", "skip_references")
    keep += ("batch_size", "prefetch", "batch_images", "keyframe_every", "embeddings")
    forwarded = {k: params[k] for k in keep if params.get(k) is not None}
    n = _num_shards(ctx)
    ids = queue_shards(
        target,
        plan.bank_key,
        plan.out_field,
        n,
        overwrite=plan.overwrite,
        device=plan.device,
        **forwarded,
    )
    return {
        "queued": n,
        "out_field": plan.out_field,
        "operation_ids": ids,
        "follow": "fiftyone delegated list; start workers with "
        "`CUDA_VISIBLE_DEVICES=k fiftyone delegated launch` (one per GPU or machine)",
    }


def _queued_output(outputs):
    outputs.int("queued", label="Delegated tasks queued (one per shard)")
    outputs.str("out_field", label="Output field (run key)")
    outputs.str("follow", label="Follow them")
    return types.Property(outputs, view=types.View(label="Segmentation split and queued"))
