"""Issue 20 (15): ``make app`` reuses the port it was asked for once that port is free again,
instead of hopping to the next one, and says so when it does use another port.

Real sockets on the loopback interface; ``scripts/launch_app.py`` is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.unit

ADDRESS = "127.0.0.1"


@pytest.fixture(scope="module")
def launcher(repo_root):
    spec = importlib.util.spec_from_file_location(
        "ntt_launch_app_port", repo_root / "scripts" / "launch_app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _listener(port: int = 0) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the App's server
    server.bind((ADDRESS, port))
    server.listen()
    return server


def _just_stopped_server() -> int:
    """A port whose server has just stopped after serving a connection it closed first (an
    App stopped with its browser tab open): the server's side of that connection lingers in
    TIME_WAIT for a minute, no one listens on the port."""
    server = _listener()
    port = server.getsockname()[1]
    client = socket.create_connection((ADDRESS, port))
    conn, _ = server.accept()
    conn.close()  # the server closes first: its end goes to TIME_WAIT
    time.sleep(0.2)
    client.close()
    server.close()
    return port


def test_a_just_released_port_is_reused(launcher, capsys):
    port = _just_stopped_server()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain:  # the old probe's bind
        with pytest.raises(OSError):
            plain.bind((ADDRESS, port))
    assert launcher.port_is_free(ADDRESS, port)
    assert launcher.choose_port(ADDRESS, port, wait_s=0) == port
    assert "instead" not in capsys.readouterr().out


def test_a_port_freed_within_the_wait_is_reused(launcher, capsys):
    server = _listener()
    port = server.getsockname()[1]
    timer = threading.Timer(1.0, server.close)  # an App still closing
    timer.start()
    try:
        assert launcher.choose_port(ADDRESS, port, wait_s=10) == port
    finally:
        timer.cancel()
        server.close()
    assert "instead" not in capsys.readouterr().out


def test_a_taken_port_is_replaced_and_said(launcher, capsys):
    server = _listener()
    port = server.getsockname()[1]
    try:
        assert not launcher.port_is_free(ADDRESS, port)
        started = time.monotonic()
        chosen = launcher.choose_port(ADDRESS, port, wait_s=1)
        assert time.monotonic() - started >= 1  # it waited before hopping
    finally:
        server.close()
    assert chosen != port
    out = capsys.readouterr().out
    assert f"Port {port} on {ADDRESS} is in use" in out and f"using port {chosen} instead" in out
