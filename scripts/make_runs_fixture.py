"""Write ``tests/integration/data/runs_fixture/``: a dataset whose runs, banks and claims were
written by this checkout's code, for ``tests/integration/test_old_runs_fixture.py``.

FiftyOne stores each run's config class path (``fiftyone_ntt.fiftyone.runs.config.NTTRunConfig``)
in the database, and the adapter keeps its bank index and its claims in the dataset's
execution store ``"ntt"``. A dataset written today must still load after the code moves; the
test imports this fixture into a fresh database and checks that it does.

What it writes, with the fake models (:mod:`fiftyone_ntt.testing`) on the painted images of
``tests/integration/ntt_painted.py``, in a private ``mongod`` (``scripts/private_mongod.py``)
that is stopped at the end:

* bank ``colours`` version 1 (3 references) and version 2 (one more reference);
* run ``ntt``: a completed segmentation, evaluated as ``eval``;
* run ``ntt_crashed``: a segmentation stopped by an error (recorded ``interrupted``);
* run ``ntt_killed``: a segmentation whose process died (``os._exit``) mid-run, leaving its
  results ``running`` and its claim in the store (read back as ``interrupted``).

Files: ``dataset/`` (``fo.types.FiftyOneDataset`` export: samples, images, runs and their
results), ``execution_store.json`` (every key of the ``"ntt"`` store, MongoDB extended JSON:
the export leaves the execution store out), ``banks/`` (the bank files, relative to the
dataset's bank folder) and ``manifest.json`` (where the bank files were, the dataset's id,
the versions that wrote it).

Usage: ``.venv/bin/python scripts/make_runs_fixture.py [--out DIR]``. Rewriting the fixture
defeats its purpose (it stands for data written by older code): only do it on purpose.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "tests" / "integration" / "data" / "runs_fixture"
DATASET_NAME = "ntt-runs-fixture"
BANK_KEY = "colours"
GT = "ground_truth"
#: (sample index, detection index) of the reference added for bank version 2.
EXTRA_REFERENCE = (1, 2)
KILL_AFTER = 4  # images embedded before the "killed" run's process dies


def _private_mongod():
    spec = importlib.util.spec_from_file_location(
        "ntt_private_mongod", REPO_ROOT / "scripts" / "private_mongod.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _environment(work: Path, uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
    env.update(
        {
            "FIFTYONE_DATABASE_URI": uri,
            "FIFTYONE_DATABASE_DIR": str(work / "db"),
            "FIFTYONE_DEFAULT_DATASET_DIR": str(work / "datasets"),
            "FIFTYONE_PLUGINS_DIR": str(work / "plugins"),
            "FIFTYONE_CONFIG_PATH": str(work / "config.json"),
            "FIFTYONE_APP_CONFIG_PATH": str(work / "app_config.json"),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "FIFTYONE_SHOW_PROGRESS_BARS": "false",
            "FIFTYONE_NTT_TEST_MODELS": "fake",
            "FIFTYONE_NTT_BANKS_DIR": str(work / "banks"),
        }
    )
    return env


class _DyingProposer:
    """The fake proposer, whose process dies (no cleanup, like ``kill -9``) after
    :data:`KILL_AFTER` embedded images; or raises instead (``crash=True``)."""

    def __init__(self, crash: bool = False):
        from fiftyone_ntt.testing import RegionProposer

        self.inner = RegionProposer()
        self.crash = crash
        self.calls = 0
        self.input_size = self.inner.input_size
        self.mask_size = self.inner.mask_size
        self.device = self.inner.device
        self.identity = self.inner.identity

    def embed(self, pixels):
        if self.calls >= KILL_AFTER:
            if self.crash:
                raise RuntimeError("simulated crash")
            os._exit(3)
        self.calls += 1
        return self.inner.embed(pixels)

    def propose(self, *args):
        return self.inner.propose(*args)

    def segment_boxes(self, *args):
        return self.inner.segment_boxes(*args)


def _config():
    from fiftyone_ntt.config import NTTConfig

    return NTTConfig(points_per_side=16)


def _killed_child() -> None:
    """Runs in a child process: segment ``ntt_killed`` until the process dies."""
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.testing import ColorEncoder

    dataset = fo.load_dataset(DATASET_NAME)
    nf.segment(
        dataset,
        BANK_KEY,
        "ntt_killed",
        batch_size=2,
        batch_images=1,
        prefetch=0,
        encoder=ColorEncoder(),
        proposer=_DyingProposer(),
        progress=False,
    )
    raise SystemExit("the killed run finished; it should have died")


def _write(out: Path, work: Path, env: dict[str, str]) -> None:
    import bson.json_util
    import fiftyone as fo

    import fiftyone_ntt.fiftyone as nf
    from fiftyone_ntt.fiftyone.dataset.store import execution_store
    from fiftyone_ntt.fiftyone.runs.config import versions
    from fiftyone_ntt.testing import ColorEncoder

    sys.path.insert(0, str(REPO_ROOT / "tests" / "integration"))
    from ntt_painted import fill_painted_dataset

    dataset = fill_painted_dataset(fo.Dataset(DATASET_NAME), work / "images")
    dataset.persistent = True
    nf.build_bank(dataset, GT, BANK_KEY, config=_config())
    sample = dataset.skip(EXTRA_REFERENCE[0]).first()
    extra = sample[GT].detections[EXTRA_REFERENCE[1]].id
    dataset.select_labels(ids=[extra], fields=GT).tag_labels("ntt:ref", label_fields=[GT])
    nf.build_bank(dataset, GT, BANK_KEY, config=_config())

    nf.segment(dataset, BANK_KEY, "ntt", encoder=ColorEncoder(), progress=False)
    nf.evaluate(dataset, "ntt", "eval")
    try:
        nf.segment(
            dataset,
            BANK_KEY,
            "ntt_crashed",
            batch_size=2,
            encoder=ColorEncoder(),
            proposer=_DyingProposer(crash=True),
            progress=False,
        )
    except RuntimeError as error:
        assert "simulated crash" in str(error), error
    else:
        raise SystemExit("the crashed run finished; it should have raised")
    child = subprocess.run(
        [sys.executable, __file__, "--killed-child"], env=env, capture_output=True, text=True
    )
    if child.returncode != 3:
        raise SystemExit(f"the killed run exited {child.returncode}:\n{child.stderr}")
    dataset.reload()

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dataset.export(
        export_dir=str(out / "dataset"),
        dataset_type=fo.types.FiftyOneDataset,
        export_media=True,
        export_runs=True,
    )
    store = execution_store(dataset)
    entries = {key: store.get(key) for key in sorted(store.list_keys())}
    (out / "execution_store.json").write_text(
        bson.json_util.dumps(entries, indent=1, sort_keys=True) + "\n"
    )
    banks = Path(env["FIFTYONE_NTT_BANKS_DIR"]) / str(dataset._doc.id)
    shutil.copytree(banks, out / "banks")
    manifest = {
        "dataset_name": DATASET_NAME,
        "dataset_id": str(dataset._doc.id),
        "banks_dir": str(banks),
        "written_by": _git_head(),
        "versions": versions(),
        "runs": sorted(dataset.list_runs()),
        "evaluations": sorted(dataset.list_evaluations()),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    dataset.delete()


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture folder")
    parser.add_argument("--killed-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.killed_child:
        _killed_child()
        return 0
    work = Path(tempfile.mkdtemp(prefix="ntt-runs-fixture-"))
    mongod = _private_mongod().start_mongod(work / "db")
    try:
        env = _environment(work, mongod.uri)
        (work / "plugins").mkdir()
        os.environ.clear()
        os.environ.update(env)
        _write(args.out.resolve(), work, env)
    finally:
        mongod.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
