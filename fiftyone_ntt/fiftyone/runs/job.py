"""The job over a view: segment a FiftyOne collection with a memory bank, resumably, with
provenance (:func:`segment`). It plans the run (:func:`~fiftyone_ntt.fiftyone.runs.plan.plan_segment`:
the request checked, the settings resolved, the output field's state, the counts; the
*Segment* form shows the same plan), then :func:`run_plan` refuses the plan's first
problem, loads the models, claims the output field
(:mod:`~fiftyone_ntt.fiftyone.runs.claims`), and hands the plan to the loop over images
(:mod:`~fiftyone_ntt.fiftyone.runs.image_loop`) or video frames
(:mod:`~fiftyone_ntt.fiftyone.runs.video_loop`); the per-image algorithm is
:class:`fiftyone_ntt.segmenter.Segmenter`. Split runs: :mod:`~fiftyone_ntt.fiftyone.runs.shards`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import fiftyone as fo
from tqdm.auto import tqdm

from fiftyone_ntt.config import NTTConfig
from fiftyone_ntt.fiftyone.dataset.media import check_video_collection
from fiftyone_ntt.fiftyone.dataset.model_cache import model_identity
from fiftyone_ntt.fiftyone.runs.claims import claim, release
from fiftyone_ntt.fiftyone.runs.image_loop import RunPlan, run_segmentation
from fiftyone_ntt.fiftyone.runs.plan import SegmentPlan, other_run_error, plan_segment
from fiftyone_ntt.fiftyone.runs.record import run_fingerprint
from fiftyone_ntt.fiftyone.runs.settings import (
    DEFAULT_MAX_OBJECTS,
    propagator_for,
    segmenter_for,
)
from fiftyone_ntt.fiftyone.runs.video_loop import Tracking, run_video_segmentation
from fiftyone_ntt.models.allocator import release_free_memory
from fiftyone_ntt.tracking import check_max_objects

__all__ = ["run_plan", "segment", "segment_frames"]


def segment(
    collection: Any,
    bank: Any,
    out_field: str,
    *,
    config: NTTConfig | None = None,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    points_per_side: int | None = None,
    embeddings: bool | None = None,
    skip_references: bool = True,
    overwrite: bool = False,
    batch_size: int = 16,
    batch_images: int | None = None,
    prefetch: int = 2,
    device: str | None = None,
    encoder: Any = None,
    proposer: Any = None,
    shard: tuple[int, int] | None = None,
    progress: bool | Callable[[int, int], None] | None = True,
    keyframe_every: int = 1,
    max_objects: int | None = None,
    propagator: Any = None,
) -> dict[str, Any]:
    """Segment the bank's classes in every image of ``collection``; write ``fo.Detections``.

    A video collection is segmented frame by frame into the frame field
    ``frames.<out_field>`` (the ``frames.`` prefix is optional; the run key is the name
    without it): frames are decoded with OpenCV's bundled FFmpeg, one model call per frame
    (``batch_images`` and ``prefetch`` do not apply), ``batch_size`` counts frames, resume
    and failures are per frame, ``skip_references`` skips the frames holding the bank's
    references when it was built from frame labels, and the summary counts frames (plus
    ``videos``). A ``shard`` of a video collection is a set of whole videos
    (:mod:`~fiftyone_ntt.fiftyone.runs.video_loop`).

    Predictions have ``label``, ``confidence``, a relative box and a box-cropped mask. Writes
    happen every ``batch_size`` samples (and on interruption). A rerun with the same bank and
    settings skips the samples already done (resume) unless ``overwrite``. A sample whose
    image cannot be read is skipped and reported; the run continues. Only ``out_field`` is
    written. A field (image or frame) that holds labels No Time to Train did not write (a
    person's labels, another model's predictions, a copy of the ground truth) is refused
    unless ``overwrite`` (:func:`~fiftyone_ntt.fiftyone.runs.output_field.foreign_labels`); a
    declared field without labels is not. A custom run keyed ``out_field`` records the provenance (see
    :mod:`fiftyone_ntt.fiftyone.runs.config`).

    Args:
        collection: dataset, view or selection to segment.
        bank: a :class:`~fiftyone_ntt.memory_bank.MemoryBank`, or the key of a bank of this
            dataset (:func:`~fiftyone_ntt.fiftyone.banks.index.list_banks`).
        out_field: the ``Detections`` field to write (also the run key).
        config: settings; default the ones stored with the bank.
        score_threshold: drop detections below this; None keeps all (the paper).
        max_detections: detections per image (default: the config's, 100).
        points_per_side: SAM 2 prompt grid (default: the config's, 32).
        embeddings: True writes each detection's semantic feature as ``ntt_embedding``
            (float16; docs/method.md §15) for maps and similarity search; default the
            config's ``keep_features`` (off).
        skip_references: leave out the samples that hold one of the bank's references.
        overwrite: recompute samples already done, replace a run with other settings, and
            replace labels in ``out_field`` that No Time to Train did not write.
        batch_size: samples per database write.
        batch_images: images per model call (default: 1 on CPU, 4 on a CUDA GPU; see
            :func:`~fiftyone_ntt.segmenter.default_batch_images`). Results do not depend on
            it beyond float rounding; 1 is the paper's path exactly.
        prefetch: images read (and, for batches, resized) ahead in a background thread
            (0: none).
        device: compute device (overrides the config's).
        encoder, proposer: model instances instead of the configured ones.
        shard: ``(i, n)``: only shard ``i`` (0-based) of ``n`` contiguous ranges of the
            sorted sample ids (:mod:`~fiftyone_ntt.fiftyone.runs.shards`); the shards of a split
            run write the same field, each under its own claim, and together give exactly
            what an unsplit run gives. :func:`queue_shards` queues all of them for
            delegated workers.
        progress: True (default) shows a progress bar (tqdm, on stderr; FiftyOne's
            ``show_progress_bars`` setting turns it off), False or None none, or a callable
            ``progress(done, total)`` called after each batch of images.
        keyframe_every: videos only: No Time to Train on every K-th frame, SAM 2's video
            memory carrying its detections between, with track ids in ``Detection.index``
            (:mod:`~fiftyone_ntt.fiftyone.runs.video_loop`, docs/method.md §17); 1 (default)
            segments every frame.
        max_objects: tracks carried at a time (default 16); propagator: instead of SAM 2's
            video memory over the proposer's weights
            (:func:`~fiftyone_ntt.fiftyone.runs.settings.propagator_for`).

    Returns:
        A summary: ``run_key``, ``out_field``, ``status`` (``"completed"``), ``shard``
        (``[i, n]`` or None), ``total`` (target samples), ``done_before`` (skipped as
        already done), ``processed``, ``failed`` and ``failures`` (``sample_id``,
        ``filepath``, ``error``), ``detections``, ``seconds``, ``pid`` and ``host`` of the
        process that ran it.

    One run at a time per output field, or per shard of it: the field (or the shard) is
    claimed in the dataset's execution store (owner pid and host, heartbeat) before anything
    is written and released at the end; a stale claim (its process gone, or no heartbeat
    for :data:`LOCK_STALE_SECONDS`) is taken over. A whole-field run is refused while any
    shard of the field is live, and a shard while a whole-field run or another split of the
    field is live (:mod:`~fiftyone_ntt.fiftyone.runs.claims`). The run's results are saved with
    ``status="running"`` at the start and the summary at the end (per shard for a split
    run), so a killed run reads as interrupted (:func:`run_state`). A sample that runs out
    of memory is retried once after freeing memory (a batch that does is redone one image
    at a time), then skipped and reported.

    Raises:
        ValueError: refused output field, collection (whole grouped dataset, clips view)
            or shard, bad bank, or, without overwrite, a run with other settings
            or labels No Time to Train did not write in ``out_field``.
        FieldLockedError: another live run is writing ``out_field`` (or this shard of it,
            or a conflicting one); the message names its pid and host.
    """
    started = time.perf_counter()
    plan = plan_segment(
        collection,
        bank,
        out_field,
        config=config,
        score_threshold=score_threshold,
        max_detections=max_detections,
        points_per_side=points_per_side,
        embeddings=embeddings,
        skip_references=skip_references,
        overwrite=overwrite,
        device=device,
        shard=shard,
        batch_images=batch_images,
        keyframe_every=keyframe_every,
    )
    return run_plan(
        plan,
        batch_size=batch_size,
        prefetch=prefetch,
        encoder=encoder,
        proposer=proposer,
        progress=progress,
        started=started,
        max_objects=max_objects,
        propagator=propagator,
    )


def run_plan(
    plan: SegmentPlan,
    *,
    batch_size: int = 16,
    prefetch: int = 2,
    encoder: Any = None,
    proposer: Any = None,
    progress: bool | Callable[[int, int], None] | None = True,
    started: float | None = None,
    max_objects: int | None = None,
    propagator: Any = None,
) -> dict[str, Any]:
    """Run a plan of :func:`~fiftyone_ntt.fiftyone.runs.plan.plan_segment` (what
    :func:`segment` does after planning; the *Segment* operator runs the plan its form
    showed): refuse its first problem, load the models, fingerprint the run, refuse a field
    holding another run's predictions, claim the field and hand a ``RunPlan`` to the loop
    over images or frames. Arguments and summary as :func:`segment`'s, plus
    ``references_skipped`` (the plan's count)."""
    # deferred: torch loads only when this runs
    from fiftyone_ntt.segmenter import default_batch_images

    started = time.perf_counter() if started is None else started
    plan.raise_first()
    bank, config, out_field, shard = plan.bank, plan.config, plan.out_field, plan.shard
    segmenter = segmenter_for(bank, config, encoder, proposer)
    encoder, proposer = segmenter.encoder, segmenter.proposer
    batch_images = plan.batch_images
    if batch_images is None:
        batch_images = default_batch_images(proposer.device)
    models = model_identity(encoder, proposer)
    tracking = None
    if plan.keyframe_every > 1:  # a tracked video run: its settings are part of the run
        cap = check_max_objects(DEFAULT_MAX_OBJECTS if max_objects is None else max_objects)
        carrier = propagator_for(proposer, cap, propagator)
        tracking = Tracking(plan.keyframe_every, cap, carrier)
        models = {**models, "tracking": tracking.identity()}
    fingerprint = run_fingerprint(bank, config, models)

    collection = plan.collection
    dataset = collection._root_dataset
    if out_field in dataset.list_runs() and not plan.overwrite:
        previous = getattr(dataset.get_run_info(out_field).config, "run_fingerprint", None)
        if previous != fingerprint:
            raise other_run_error(out_field)
    # one run at a time per field (or shard): claimed before anything is written
    lock = claim(dataset, out_field, shard)
    bar = None
    try:
        run = RunPlan(
            collection=collection,
            dataset=dataset,
            bank=bank,
            bank_key=plan.bank_key,
            out_field=out_field,
            gt_field=plan.gt_field,
            config=config,
            segmenter=segmenter,
            models=models,
            fingerprint=fingerprint,
            lock=lock,
            shard=shard,
            skip_references=plan.skip_references,
            overwrite=plan.overwrite,
            batch_size=batch_size,
            batch_images=batch_images,
            prefetch=prefetch,
            started=started,
        )
        report = progress if callable(progress) else None
        if progress is True:
            bar, report = _progress_bar(out_field, shard, "frame" if plan.video else "img")
        if plan.video:
            summary = run_video_segmentation(run, report, tracking)
        else:
            summary = run_segmentation(run, report)
    finally:
        if bar is not None:
            bar.close()
        release(dataset, out_field, lock, shard)
        # This process may live on (the App's server, a delegated worker): hand the CPU
        # buffers kept for reuse during the run back to the system.
        release_free_memory()
    if plan.counts is not None:
        summary.setdefault("references_skipped", plan.counts["references"])
    return summary


def _progress_bar(out_field: str, shard: tuple[int, int] | None, unit: str = "img"):
    """A tqdm bar and the ``progress(done, total)`` callback that moves it."""

    what = out_field if shard is None else f"{out_field} (shard {shard[0] + 1}/{shard[1]})"
    bar = tqdm(
        desc=f"segmenting {what}",
        unit=unit,
        disable=not getattr(fo.config, "show_progress_bars", True),
    )

    def report(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    return bar, report


def segment_frames(collection: Any, bank: Any, out_field: str = "ntt", **kwargs: Any) -> dict:
    """Segment every frame of a video collection into ``frames.<out_field>``:
    :func:`fiftyone_ntt.fiftyone.runs.job` (same arguments and summary, counted in frames),
    refusing a collection that does not hold videos."""
    check_video_collection(collection)
    kwargs.setdefault("progress", None)
    return segment(collection, bank, out_field, **kwargs)
