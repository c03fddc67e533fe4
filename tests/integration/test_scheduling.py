"""Issue 20.1: scheduling works out of the box, and where FiftyOne does not offer it the
heavy operators still leave a button.

FiftyOne 1.22 offers "Schedule" in the open-source App only with
``allow_legacy_orchestrators`` (``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true``); the test
session runs under FiftyOne's default config (``tests/conftest.py`` clears every
``FIFTYONE_*`` setting), which is what a user's own App has. The execution options are
resolved the way the App resolves them (FiftyOne's ``resolve_execution_options``).
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import os
import shlex
import subprocess
import sys

import pytest
from test_ntt_operators import _form, _run

pytestmark = pytest.mark.integration

PLUGIN = "@fiftyone-ntt/no-time-to-train"
GT = "ground_truth"
SCHEDULING_ENV = "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"
LARGE = 60  # above the 50 samples from which the heavy operators want a worker


def _options(name, collection, params=None) -> dict:
    """The execution options the App gets for operator ``name`` on ``collection`` (a dataset
    or a view), from FiftyOne's own resolver."""
    from fiftyone.operators.executor import _parse_ctx, resolve_execution_options
    from fiftyone.operators.registry import OperatorRegistry

    request = _parse_ctx(
        dataset=collection._root_dataset, view=collection.view(), params=params or {}
    )
    options = asyncio.run(
        resolve_execution_options(OperatorRegistry(), f"{PLUGIN}/{name}", request)
    )
    assert hasattr(options, "to_dict"), getattr(options, "error", options)
    return options.to_dict()


def _buttons(options: dict) -> list[str]:
    """The buttons the open-source App shows for these options (its rule: "Schedule" only
    where orchestrator registration is off or an orchestrator is available)."""
    buttons = []
    if options["allow_immediate_execution"]:
        buttons.append("Execute")
    if options["allow_delegated_execution"] and (
        not options["orchestrator_registration_enabled"] or options["available_orchestrators"]
    ):
        buttons.append("Schedule")
    return buttons


def _texts(form: dict) -> str:
    parts = []
    for prop in form["type"]["properties"].values():
        view = prop.get("view") or {}
        parts += [str(view.get("label") or ""), str(view.get("description") or "")]
    return "\n".join(parts)


@pytest.fixture
def large_painted(painted_dataset):
    """The painted dataset grown to 60 samples (the references stay on the first ones)."""
    from ntt_painted import grow_painted_dataset

    dataset = grow_painted_dataset(painted_dataset, LARGE)
    assert len(dataset) == LARGE
    return dataset


def test_default_config_offers_execute_for_a_large_view_and_says_what_to_set(large_painted):
    import fiftyone as fo

    dataset = large_painted
    assert not fo.config.allow_legacy_orchestrators  # FiftyOne's default
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})

    for name, params in (
        ("ntt_segment", {"bank": "colours"}),
        ("ntt_evaluate", {"pred_field": GT, "gt_field": GT}),
    ):
        options = _options(name, dataset, params)
        assert "Execute" in _buttons(options), (name, options)

    form_text = _texts(_form("ntt_segment", dataset, {"bank": "colours"}))
    assert f"{SCHEDULING_ENV}=true" in form_text
    assert '"allow_legacy_orchestrators": true' in form_text
    assert "delegated launch" in form_text  # and how to start the worker
    assert "60 samples" in form_text  # it says why: this view is large


def test_with_scheduling_on_a_large_view_is_scheduled(large_painted, monkeypatch):
    import fiftyone as fo

    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)
    options = _options("ntt_segment", large_painted, {})
    assert _buttons(options) == ["Schedule"], options
    # a small view keeps both buttons, Schedule first
    small = large_painted.limit(10)
    options = _options("ntt_segment", small, {})
    assert _buttons(options) == ["Execute", "Schedule"]
    assert options["default_choice_to_delegated"]


# --- the launcher (make app) --------------------------------------------------------------


def _launcher(repo_root):
    spec = importlib.util.spec_from_file_location(
        "ntt_launch_app", repo_root / "scripts" / "launch_app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launcher_environment_and_worker_command_enable_scheduling(repo_root, tmp_path):
    launcher = _launcher(repo_root)
    user_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}  # a user's plain shell
    env = launcher.app_environment(user_env)
    assert env[SCHEDULING_ENV] == "true"
    plugins_dir = env["FIFTYONE_PLUGINS_DIR"]
    assert launcher.plugins_dir_containing_checkout(plugins_dir)

    command = launcher.worker_command(env)
    words = shlex.split(command)
    assigned = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
    assert assigned[SCHEDULING_ENV] == "true"
    assert assigned["FIFTYONE_PLUGINS_DIR"] == plugins_dir
    assert words[-2:] == ["delegated", "launch"]
    assert os.access(words[len(assigned)], os.X_OK)  # the fiftyone of this environment

    # what that worker's FiftyOne reads: scheduling on, this plugin found
    probe = (
        "import fiftyone as fo, fiftyone.plugins as fop;"
        "print(fo.config.allow_legacy_orchestrators);"
        "print([p.name for p in fop.list_plugins()])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **assigned},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "True"
    assert PLUGIN in out[1]


def test_launcher_keeps_a_users_explicit_scheduling_setting(repo_root):
    launcher = _launcher(repo_root)
    env = launcher.app_environment({"PATH": os.environ["PATH"], SCHEDULING_ENV: "false"})
    assert env[SCHEDULING_ENV] == "false"


# --- the panel: a queued run nobody picks up --------------------------------------------


def test_unclaimed_run_says_how_to_start_a_worker(painted_dataset):
    """A run queued more than a minute ago that no worker has claimed: the panel says so and
    gives the worker command; a fresh one or a claimed one gets no notice."""
    import fiftyone as fo
    import fiftyone.core.odm as foo_odm
    import fiftyone.operators as foo
    from bson import ObjectId
    from panel_driver import PanelDriver

    from fiftyone_ntt.fiftyone.app.scheduling import unclaimed_notice

    dataset = painted_dataset
    _run("ntt_build_bank", dataset, {"gt_field": GT, "bank_key": "colours"})
    assert unclaimed_notice(dataset) is None
    result = foo.execute_operator(
        f"{PLUGIN}/ntt_segment",
        dataset=dataset,
        params={"bank": "colours", "out_field": "ntt"},
        request_delegation=True,
    )
    result.raise_exceptions()
    op_id = str(result.result["id"])
    assert unclaimed_notice(dataset) is None  # just queued: a worker may be on its way
    panel = PanelDriver(dataset)
    panel.call("on_load")
    assert not panel.state.get("worker_notice")

    # 90 s later (FiftyOne stores naive UTC times)
    queued_at = datetime.datetime.utcnow() - datetime.timedelta(seconds=90)
    foo_odm.get_db_conn()["delegated_ops"].update_one(
        {"_id": ObjectId(op_id)}, {"$set": {"queued_at": queued_at}}
    )
    notice = unclaimed_notice(dataset)
    assert notice is not None and "no worker has picked" in notice
    assert "delegated launch" in notice
    assert f"FIFTYONE_PLUGINS_DIR={fo.config.plugins_dir}" in notice
    panel.call("on_load")
    assert panel.state.get("worker_notice") == notice
    assert notice in str(panel.output)  # displayed

    # a worker takes it: no notice any more
    from test_ntt_operators import _run_queue

    _run_queue(dataset)
    assert unclaimed_notice(dataset) is None
