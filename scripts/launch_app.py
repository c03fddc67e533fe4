"""Launch the FiftyOne App on localhost with this plugin registered (``make app``, e2e tests).

    python scripts/launch_app.py [--dataset NAME] [--port 5151] [--address 127.0.0.1]
                                 [--url-file PATH] [--rebuild-demo]

Without ``--dataset`` (or with the demo's name) the demo dataset is built first if it is
missing (:func:`fiftyone_ntt.fiftyone.demo.build_demo_dataset`). If the port is taken, the
next free one is used and the script says so. Once the App answers over HTTP the URL is
printed (and written to ``--url-file``); the App then runs until Ctrl+C, SIGTERM or SIGHUP,
and on the way out the App's server process is stopped too.

Plugins: if ``FIFTYONE_PLUGINS_DIR`` is unset, or set to a folder that does not contain this
checkout, it is pointed at ``.app-data/plugins/``, which holds one symlink to this checkout
(so FiftyOne finds exactly this plugin and does not scan the checkout's neighbours).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_LINK_NAME = "no-time-to-train"
DEFAULT_PORT = 5151
PORT_SEARCH = 50
HTTP_TIMEOUT_S = 180


def plugins_dir_containing_checkout(plugins_dir: str | None) -> bool:
    """Whether FiftyOne, scanning ``plugins_dir``, reaches this checkout."""
    if not plugins_dir or not os.path.isdir(plugins_dir):
        return False
    root = os.path.realpath(ROOT)
    real_dir = os.path.realpath(plugins_dir)
    if root == real_dir or root.startswith(real_dir + os.sep):
        return True
    return any(
        os.path.realpath(os.path.join(plugins_dir, entry)) == root
        for entry in os.listdir(plugins_dir)
        if not entry.startswith(".")
    )


def link_plugins_dir(base: str) -> str:
    """``base`` holding one symlink to this checkout, for FIFTYONE_PLUGINS_DIR."""
    os.makedirs(base, exist_ok=True)
    link = os.path.join(base, PLUGIN_LINK_NAME)
    if os.path.islink(link) and os.path.realpath(link) != os.path.realpath(ROOT):
        os.remove(link)
    if not os.path.lexists(link):
        os.symlink(ROOT, link)
    return base


def port_is_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def choose_port(address: str, wanted: int) -> int:
    for port in range(wanted, wanted + PORT_SEARCH):
        if port_is_free(address, port):
            if port != wanted:
                print(f"Port {wanted} is in use; using port {port} instead.", flush=True)
            return port
    raise SystemExit(
        f"Ports {wanted}-{wanted + PORT_SEARCH - 1} on {address} are all in use; "
        f"free one or pass another start port (make app PORT=<n>)."
    )


def wait_for_http(url: str, timeout_s: float, alive) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise SystemExit("The FiftyOne App server exited before it answered; see above.")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"The FiftyOne App did not answer at {url} within {timeout_s:.0f} s.")


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="dataset name (default: the demo)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--url-file", default=None, help="write the App's URL here when ready")
    parser.add_argument("--rebuild-demo", action="store_true", help="rebuild the demo dataset")
    args = parser.parse_args(argv)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _raise_stop)

    if not plugins_dir_containing_checkout(os.environ.get("FIFTYONE_PLUGINS_DIR")):
        before = os.environ.get("FIFTYONE_PLUGINS_DIR")
        os.environ["FIFTYONE_PLUGINS_DIR"] = link_plugins_dir(
            os.path.join(ROOT, ".app-data", "plugins")
        )
        if before:
            print(
                f"FIFTYONE_PLUGINS_DIR={before} does not contain this checkout; using "
                f"{os.environ['FIFTYONE_PLUGINS_DIR']} for this App.",
                flush=True,
            )
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")

    session = None
    try:
        import fiftyone as fo
        import fiftyone.plugins as fop

        from fiftyone_ntt.fiftyone.demo import DEMO_DATASET_NAME, build_demo_dataset

        name = args.dataset or DEMO_DATASET_NAME
        if name == DEMO_DATASET_NAME:
            dataset = build_demo_dataset(name, overwrite=args.rebuild_demo)
        elif fo.dataset_exists(name):
            dataset = fo.load_dataset(name)
        else:
            known = ", ".join(fo.list_datasets()) or "none"
            print(f"No dataset named {name!r}. Datasets: {known}.", file=sys.stderr)
            return 2

        plugins = [
            p.name
            for p in fop.list_plugins()
            if os.path.realpath(p.directory) == os.path.realpath(ROOT)
        ]
        if not plugins:
            print(
                f"Warning: FiftyOne does not list the plugin in {ROOT} "
                f"(FIFTYONE_PLUGINS_DIR={fo.config.plugins_dir}).",
                file=sys.stderr,
            )

        port = choose_port(args.address, args.port)
        logging.getLogger("fiftyone.core.session").setLevel(logging.WARNING)
        session = fo.launch_app(dataset, port=port, address=args.address, remote=True, auto=False)
        url = f"http://{args.address}:{port}/"

        def server_alive() -> bool:
            import fiftyone.core.session.session as fos

            service = fos._server_services.get(port)
            return service is not None and service.child.poll() is None

        wait_for_http(url, HTTP_TIMEOUT_S, server_alive)
        if args.url_file:
            with open(args.url_file + ".tmp", "w") as f:
                f.write(url)
            os.replace(args.url_file + ".tmp", args.url_file)
        print(
            f"\nFiftyOne App: {url}\n"
            f"  dataset: {dataset.name} ({len(dataset)} samples)\n"
            f"  plugin:  {', '.join(plugins) or 'not found'} from {ROOT}\n"
            f"Stop it with Ctrl+C (or: kill {os.getpid()}).\n",
            flush=True,
        )
        while server_alive():
            time.sleep(1)
        print("The FiftyOne App server exited.", file=sys.stderr)
        return 1
    except (_Stop, KeyboardInterrupt) as stop:
        print(f"\nStopping the FiftyOne App ({stop or 'SIGINT'}).", flush=True)
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if session is not None:
            session.close()


if __name__ == "__main__":
    sys.exit(main())
