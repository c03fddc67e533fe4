"""One segmentation split into N shards, run by N FiftyOne delegated-operation workers.

Shard ``i`` of ``n`` is the ``i``-th of ``n`` contiguous ranges of the target's sample ids
in sorted order (sizes differ by at most one): on a video dataset, a set of whole videos
(the tracks of a video need all its frames in one process). The same view gives the same shards on every
rerun, on any machine, so a shard can be resumed or rerun on its own. All shards write the
same output field and mark finished samples with the same run fingerprint, so a split run
gives exactly the field an unsplit run gives.

Each worker started with ``fiftyone delegated launch`` against the same MongoDB claims
queued operations atomically; :func:`queue_shards` queues one ``ntt_segment`` operation per
shard.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from fiftyone import ViewField as F
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

from fiftyone_ntt.fiftyone.banks.index import get_bank_info
from fiftyone_ntt.fiftyone.dataset.media import frame_field_name
from fiftyone_ntt.fiftyone.runs.output_field import check_output_field

__all__ = ["PLUGIN_SEGMENT_OPERATOR", "check_shard", "queue_shards", "shard_view"]

#: URI of the plugin's segment operator (the plugin is ``fiftyone.yml``'s name).
PLUGIN_SEGMENT_OPERATOR = "@fiftyone-ntt/no-time-to-train/ntt_segment"


def check_shard(shard: Any) -> tuple[int, int] | None:
    """``(i, n)`` as ints, or None for an unsplit run.

    Raises:
        ValueError: not two integers with ``n >= 1`` and ``0 <= i < n`` (the message names
            the value and the valid range).
    """
    if shard is None:
        return None
    try:
        index, count = shard
        if isinstance(index, bool) or isinstance(count, bool):
            raise TypeError
        if int(index) != index or int(count) != count:
            raise TypeError
        index, count = int(index), int(count)
    except (TypeError, ValueError):
        raise ValueError(
            f"shard={shard!r} is not a pair of integers; pass shard=(i, n): shard i "
            "(0-based) of n, e.g. shard=(0, 3)"
        ) from None
    if count < 1:
        raise ValueError(f"shard={shard!r}: the number of shards n={count} must be at least 1")
    if not 0 <= index < count:
        raise ValueError(
            f"shard={shard!r}: the shard index i={index} must lie in 0..{count - 1} "
            f"(0-based) for n={count} shards"
        )
    return index, count


def shard_bounds(count_samples: int, index: int, count: int) -> tuple[int, int]:
    """``[start, stop)`` positions of shard ``index`` of ``count`` among ``count_samples``."""
    return index * count_samples // count, (index + 1) * count_samples // count


def shard_view(collection: Any, shard: tuple[int, int]) -> Any:
    """The samples of ``collection`` in shard ``(i, n)`` (a view; possibly empty)."""

    index, count = shard
    ids = sorted(collection.values("id"))
    start, stop = shard_bounds(len(ids), index, count)
    if start >= stop:
        return collection.limit(0)
    # a range of _id within the view: small to store and fast, unlike a list of ids
    low, high = ObjectId(ids[start]), ObjectId(ids[stop - 1])
    return collection.match((F("_id") >= low) & (F("_id") <= high))


def queue_shards(
    collection: Any,
    bank: str,
    out_field: str,
    num_shards: int,
    **params: Any,
) -> list[str]:
    """Queue one delegated ``ntt_segment`` operation per shard of ``collection``.

    Workers (``fiftyone delegated launch``, one per GPU or machine, same database) then run
    them in parallel. Follow them with ``fiftyone delegated list`` or
    :func:`~fiftyone_ntt.fiftyone.runs.record.run_state`.

    Args:
        collection: dataset or view to segment (queued as a view of its dataset).
        bank: key of a bank of this dataset (workers load it by key).
        out_field: the ``Detections`` field every shard writes (a frame field on videos).
        num_shards: N >= 1.
        **params: other parameters of the operator (``score_threshold``,
            ``max_detections``, ``points_per_side``, ``skip_references``, ``overwrite``,
            ``batch_size``, ``batch_images``, ``device``, ``keyframe_every``, ...).

    Returns:
        The ids of the queued delegated operations, shard 0 first.

    Raises:
        ValueError: bad ``num_shards``, ``bank`` not a bank key, or a refused output field.
    """

    check_shard((0, num_shards))
    if not isinstance(bank, str):
        raise ValueError(
            f"bank={type(bank).__name__} cannot be sent to workers; pass the key of a bank of "
            "this dataset (see list_banks)"
        )
    try:
        info = get_bank_info(collection, bank)
    except KeyError as error:
        raise ValueError(
            f"{error.args[0]}; build it first (build_bank) or pass an existing key"
        ) from None
    video = collection.media_type == "video"
    if video:
        out_field = frame_field_name(out_field)  # ``frames.`` optional, as for segment
    check_output_field(
        collection,
        out_field,
        info.get("gt_field"),
        frames=video,
        overwrite=bool(params.get("overwrite")),
    )
    dataset = collection._root_dataset
    view = collection.view() if collection is dataset else collection
    service = DelegatedOperationService()
    ids = []
    for index in range(int(num_shards)):
        request = {
            "dataset_name": dataset.name,
            "view": view._serialize(),
            "params": {
                **params,
                "bank": bank,
                "out_field": out_field,
                "shard": [index, int(num_shards)],
            },
            "delegated": True,
        }
        operation = service.queue_operation(
            operator=PLUGIN_SEGMENT_OPERATOR,
            label=f"No Time to Train: segment {out_field} (shard {index + 1}/{num_shards})",
            context=ExecutionContext(request_params=request),
        )
        ids.append(str(operation.id))
    return ids
