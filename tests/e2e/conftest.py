"""E2E tier: the FiftyOne App, started by ``scripts/launch_app.py`` (the script behind
``make app``), driven in headless Chromium by the Python playwright package.

The App runs in a subprocess on a free localhost port, against this session's database (see
``tests/conftest.py``). FiftyOne starts the App server as a service process in a session of
its own, so stopping the launcher's process group is not enough: the fixture records the
whole process tree it started and, on teardown, stops every process in it and checks that
none is left.

Chromium: ``NTT_CHROMIUM`` or ``/usr/bin/chromium`` (``scripts/setup.sh --browser`` installs
Debian's). Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_console import PAINT_ERROR

APP_START_TIMEOUT_S = 240
#: Extra environment of the App process: only the plugin's test-model switch (its operators
#: run with the deterministic fake models; no weights can be downloaded here). No FiftyOne
#: setting: the App is started exactly as ``make app`` starts it, and whatever FiftyOne
#: setting it needs (scheduling, the plugins folder) comes from the launcher.
APP_TEST_ENV = {
    "FIFTYONE_NTT_TEST_MODELS": os.environ.get("FIFTYONE_NTT_TEST_MODELS", "fake"),
}
#: The launcher prints the command that starts a worker for the App's scheduled runs on a
#: line of its own, after this one.
WORKER_COMMAND_INTRO = "`make worker`, or:"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessTree:
    """A process and every descendant ever seen, so that children that outlive (or are
    re-parented away from) the root can still be stopped."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.seen: dict[int, psutil.Process] = {pid: self.root}

    def refresh(self) -> None:
        try:
            for child in self.root.children(recursive=True):
                self.seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
        # also descendants of recorded processes that are no longer under the root
        for proc in list(self.seen.values()):
            try:
                for child in proc.children(recursive=True):
                    self.seen.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                continue

    def alive(self) -> list[psutil.Process]:
        out = []
        for proc in self.seen.values():
            try:
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    out.append(proc)
            except psutil.NoSuchProcess:
                continue
        return out

    def stop(self, grace_s: float = 30) -> list[psutil.Process]:
        """SIGTERM to the root (the launcher closes the App cleanly), then to whatever is
        left, then SIGKILL. Returns the processes still alive after all that."""
        self.refresh()
        try:
            self.root.send_signal(signal.SIGTERM)
            self.root.wait(grace_s)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass
        self.refresh()
        rest = self.alive()
        for proc in rest:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                pass
        _, rest = psutil.wait_procs(rest, timeout=10)
        for proc in rest:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        _, rest = psutil.wait_procs(rest, timeout=5)
        return rest


@pytest.fixture(scope="session")
def artifacts_dir(repo_root) -> Path:
    """``test-artifacts/`` in the checkout (git-ignored): screenshots and App logs."""
    path = repo_root / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def app_url(demo_dataset, session_dir, repo_root, artifacts_dir):
    """URL of a running FiftyOne App showing the demo dataset; stopped after the session.

    The demo dataset is built in this process first, so the database service belongs to
    the test process and the App subprocess only connects to it."""
    port = _free_port()
    url_file = session_dir / f"app-url-{port}"
    log_path = artifacts_dir / "e2e-app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(repo_root / "scripts" / "launch_app.py"),
                "--dataset",
                demo_dataset.name,
                "--port",
                str(port),
                "--url-file",
                str(url_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(os.environ, **APP_TEST_ENV),
        )
    tree = ProcessTree(proc.pid)
    try:
        deadline = time.monotonic() + APP_START_TIMEOUT_S
        while not url_file.exists():
            tree.refresh()
            if proc.poll() is not None:
                pytest.fail(
                    f"launch_app.py exited with {proc.returncode} before the App answered:\n"
                    + log_path.read_text()[-3000:]
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the App did not answer within {APP_START_TIMEOUT_S} s:\n"
                    + log_path.read_text()[-3000:]
                )
            time.sleep(0.5)
        tree.refresh()
        yield url_file.read_text().strip()
    finally:
        left = tree.stop()
        if left:
            pytest.fail(f"processes left after stopping the App: {[p.pid for p in left]}")


@pytest.fixture(scope="session")
def worker_command(app_url, artifacts_dir) -> str:
    """The worker command ``make app``'s launcher printed for this App (read from its log)."""
    lines = (artifacts_dir / "e2e-app.log").read_text().splitlines()
    for index, line in enumerate(lines[:-1]):
        if line.rstrip().endswith(WORKER_COMMAND_INTRO):
            command = lines[index + 1].strip()
            assert command.endswith("delegated launch"), command
            return command
    pytest.fail("the launcher printed no worker command:\n" + "\n".join(lines[-30:]))


@pytest.fixture
def app_worker(worker_command, artifacts_dir):
    """A worker started by the printed command, in a shell whose environment has no FiftyOne
    setting (the command must carry them all, as for a user's second terminal); stopped,
    with every process it started, after the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
    log_path = artifacts_dir / "e2e-worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", "-c", worker_command],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    tree = ProcessTree(proc.pid)
    try:
        yield log_path
    finally:
        left = tree.stop(grace_s=10)
        if left:
            pytest.fail(f"processes left after stopping the worker: {[p.pid for p in left]}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("NTT_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"no Chromium at {path}: run `scripts/setup.sh --browser` (installs Debian's "
            f"chromium) or set NTT_CHROMIUM to a Chromium/Chrome binary"
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # launch_persistent_context on a fresh folder: a new, empty profile every session
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="session")
def painting_log(artifacts_dir) -> Path:
    """``test-artifacts/painting-errors.txt``: per test, how many label-painting workers the
    App lost (a record for the team; ``test_drawn_equals_stored`` asserts none)."""
    path = artifacts_dir / "painting-errors.txt"
    path.write_text("")
    return path


@pytest.fixture
def page(browser, request, painting_log):
    page = browser.new_page()
    lost: list[str] = []
    page.on("console", lambda m: lost.append(m.text) if PAINT_ERROR in m.text else None)
    try:
        yield page
    finally:
        page.close()
        with painting_log.open("a") as log:
            log.write(f"{request.node.nodeid}: {len(lost)}\n")
