"""The one accessor of a dataset's FiftyOne execution stores: ``ntt`` holds the bank index,
the claims on output fields, shard records and cancel requests; the panel keeps its own
(``ntt_panel``)."""

from __future__ import annotations

from typing import Any

from fiftyone.operators.store import ExecutionStore

__all__ = ["BANK_KEY_PREFIX", "STORE_NAME", "execution_store", "root_dataset"]

#: The execution store of the library (per dataset).
STORE_NAME = "ntt"
#: Store keys of the bank index: ``bank:<key>`` points to a bank's latest version.
BANK_KEY_PREFIX = "bank:"


def root_dataset(collection: Any) -> Any:
    """The dataset a collection (a view, a patches view) belongs to."""
    return collection._root_dataset


def execution_store(collection: Any, name: str = STORE_NAME) -> Any:
    """The execution store ``name`` of the collection's dataset (created on first use)."""
    return ExecutionStore.create(name, root_dataset(collection)._doc.id)
