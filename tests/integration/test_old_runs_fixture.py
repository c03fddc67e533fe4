"""A dataset written by older code still loads: its runs, bank versions and run states.

``data/runs_fixture/`` was written by ``scripts/make_runs_fixture.py`` (see its docstring and
``manifest.json`` for the commit) and is committed, so that it stands for a user's database
written before the code moved. FiftyOne stores each run's config class path
(``fiftyone_ntt.fiftyone.runs.NTTRunConfig``) and loads it by that path; the adapter keeps
its bank index and its claims in the dataset's execution store ``"ntt"`` under keys that
must keep their meaning. Do not regenerate the fixture to make this test pass.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).parent / "data" / "runs_fixture"
#: What the fixture's writer did (scripts/make_runs_fixture.py): run key -> how it ended.
RUN_STATES = {"ntt": "completed", "ntt_crashed": "interrupted", "ntt_killed": "interrupted"}
#: ... and what each run recorded in its results when it stopped (the killed process never
#: recorded its end).
RECORDED = {"ntt": "completed", "ntt_crashed": "interrupted", "ntt_killed": "running"}
#: The stored name of the execution store that holds the bank index and the claims.
STORE_NAME = "ntt"
CONFIG_CLASS = "fiftyone_ntt.fiftyone.runs.NTTRunConfig"


@pytest.fixture
def old_dataset(fo_session, tmp_path, monkeypatch):
    """The fixture imported into this session's database as a new dataset, its execution
    store restored under the new dataset's id and its bank files copied into a bank folder
    of this test (the index's paths moved with them, as a user moving the folder would)."""
    import bson.json_util
    from fiftyone.operators.store import ExecutionStore

    fo = fo_session
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    dataset = fo.Dataset.from_dir(
        dataset_dir=str(FIXTURE / "dataset"),
        dataset_type=fo.types.FiftyOneDataset,
        name=f"ntt-old-runs-{uuid.uuid4().hex[:8]}",
    )
    banks_dir = tmp_path / "banks"
    monkeypatch.setenv("FIFTYONE_NTT_BANKS_DIR", str(banks_dir))
    monkeypatch.setenv("FIFTYONE_NTT_TEST_MODELS", "fake")
    new_banks = banks_dir / str(dataset._doc.id)
    shutil.copytree(FIXTURE / "banks", new_banks)

    old_prefix = manifest["banks_dir"]
    entries = bson.json_util.loads((FIXTURE / "execution_store.json").read_text())
    store = ExecutionStore.create(STORE_NAME, dataset._doc.id)
    for key, value in entries.items():
        path = value.get("path")
        if isinstance(path, str) and path.startswith(old_prefix):
            value = {**value, "path": str(new_banks) + path[len(old_prefix) :]}
        store.set(key, value)
    yield dataset, manifest, entries
    dataset.delete()


def test_fixture_stores_the_config_class_path():
    """The fixture holds what FiftyOne stores: the class path of each run's config."""
    metadata = json.loads((FIXTURE / "dataset" / "metadata.json").read_text())
    stored = {key: run["config"]["cls"] for key, run in metadata["runs"].items()}
    assert stored == {key: CONFIG_CLASS for key in RUN_STATES}


def test_runs_load_with_their_config_class(old_dataset):
    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.runs import NTTRunConfig

    dataset, manifest, _ = old_dataset
    assert sorted(dataset.list_runs()) == sorted(RUN_STATES) == manifest["runs"]
    assert sorted(nf.list_ntt_runs(dataset)) == sorted(RUN_STATES)
    for key in RUN_STATES:
        config = dataset.get_run_info(key).config
        # FiftyOne falls back to a plain RunConfig when the class path does not resolve
        assert type(config) is NTTRunConfig, (key, type(config))
        assert type(config) is nf.NTTRunConfig
        assert config.out_field == key and config.bank_key == "colours"
        assert config.bank_version == 2 and config.run_fingerprint
        assert dataset.load_run_results(key, cache=False).status == RECORDED[key]


def test_run_states_read_as_written(old_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset, _, entries = old_dataset
    # the killed run's claim is still in the store, and reads as stale (its process is gone)
    assert "lock:ntt_killed" in entries
    for key, status in RUN_STATES.items():
        state = nf.run_state(dataset, key)
        assert state["status"] == status, (key, state)
        assert state["finished"] is (status == "completed")
        assert state["lock"] is None
    completed = nf.run_state(dataset, "ntt")
    assert completed["processed"] == completed["total"] == dataset.exists("ntt").count()


def test_bank_versions_listed_and_loadable(old_dataset):
    import fiftyone_ntt.fiftyone as nf

    dataset, _, entries = old_dataset
    banks = nf.list_banks(dataset)
    assert [(b["key"], b["version"], b["num_versions"]) for b in banks] == [("colours", 2, 2)]
    assert banks[0]["exists"]
    versions = nf.bank_versions(dataset, "colours")
    assert [v["version"] for v in versions] == [1, 2]
    assert [v["num_references"] for v in versions] == [3, 4]
    assert [v["latest"] for v in versions] == [False, True]
    for version in (1, 2):
        stored = entries[f"bankv:colours:{version}"]
        bank = nf.load_bank(dataset, "colours", version)
        assert bank.fingerprint == stored["fingerprint"]
        assert bank.origin["bank_version"] == version
    latest = nf.load_bank(dataset, "colours")
    runs_bank = dataset.get_run_info("ntt").config.bank_fingerprint
    assert latest.fingerprint == runs_bank


def test_evaluation_loads(old_dataset):
    dataset, manifest, _ = old_dataset
    assert dataset.list_evaluations() == manifest["evaluations"] == ["eval"]
    results = dataset.load_evaluation_results("eval")
    assert results.mAP() > 0
