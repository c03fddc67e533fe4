"""Reading and preparing images in a background thread while the models compute.

Image decoding (PIL) and the resizing chain (PIL bicubic, torch bicubic) release the GIL for
most of their time, so one loader thread keeps the models fed on a GPU and hides most of the
reading on a CPU as well.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["batched", "prefetched"]

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def prefetched(items: Iterable[T], work: Callable[[T], R], depth: int = 2) -> Iterator[tuple[T, R]]:
    """``(item, work(item))`` in input order, ``work`` running up to ``depth`` items ahead
    in a daemon thread (``depth=0``: in the calling thread).

    An exception raised by ``work`` is re-raised here, at its item. Closing the iterator
    early (``break``, garbage collection) stops the thread after its current item.
    """
    if depth <= 0:
        for item in items:
            yield item, work(item)
        return
    results: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                try:
                    value = (item, work(item), None)
                except BaseException as error:  # handed to the consumer
                    value = (item, None, error)
                while not stop.is_set():
                    try:
                        results.put(value, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        finally:
            while not stop.is_set():
                try:
                    results.put(_DONE, timeout=0.1)
                    break
                except queue.Full:
                    continue

    thread = threading.Thread(target=run, name="ntt-image-loader", daemon=True)
    thread.start()
    try:
        while True:
            value = results.get()
            if value is _DONE:
                return
            item, result, error = value
            if error is not None:
                raise error
            yield item, result
    finally:
        stop.set()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"batch size {size!r} must be >= 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
