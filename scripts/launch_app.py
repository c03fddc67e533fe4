"""Launch the FiftyOne App on localhost with this plugin registered (``make app``, e2e tests).

    python scripts/launch_app.py [--dataset NAME] [--port 5151] [--address 127.0.0.1]
                                 [--url-file PATH] [--rebuild-demo]
    python scripts/launch_app.py --worker      # ``make worker``: a worker for scheduled runs

Without ``--dataset`` (or with the demo's name) the demo dataset is built first if it is
missing (:func:`fiftyone_ntt.fiftyone.demo.build_demo_dataset`). The port asked for is used
whenever it is free (a port an App just released is free: the probe binds like the App's
server does, with ``SO_REUSEADDR``); if it is still taken after a few seconds, the next free
one is used and the script says so. Once the App answers over HTTP the URL is printed (and
written to ``--url-file``), with the command that starts a worker for its scheduled runs; the
App then runs until Ctrl+C, SIGTERM or SIGHUP, and on the way out the App's server process is
stopped too.

No Python ``Session`` stays attached to the App (:func:`start_server`, :func:`show_dataset`):
the server is told once to show the dataset, and from then on the App's own state (the dataset
the user opens, by the dropdown or ``/datasets/<name>``) is the only one. A ``Session`` from
``fo.launch_app`` kept the launch dataset and, whenever its event connection dropped (its SDK
cannot parse some events the App sends, e.g. selected labels with ``type: null``), subscribed
again with that stale state 10 s later, which sent the App back to the launch dataset.

Environment (:func:`app_environment`, the same for the App and the worker):

- plugins: if ``FIFTYONE_PLUGINS_DIR`` is unset, or set to a folder that does not contain this
  checkout, it is pointed at ``.app-data/plugins/``, which holds one symlink to this checkout
  (so FiftyOne finds exactly this plugin and does not scan the checkout's neighbours);
- scheduling: ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true`` unless set already, so that the
  open-source App offers "Schedule" (FiftyOne 1.22 hides it otherwise) and runs of large
  views can go to a worker (``fiftyone delegated launch`` with the same settings).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_LINK_NAME = "no-time-to-train"
DEFAULT_PORT = 5151
PORT_SEARCH = 50
#: How long the port asked for may stay taken (an App that is still closing) before another
#: one is used.
PORT_WAIT_S = 5.0
HTTP_TIMEOUT_S = 180
SCHEDULING_ENV = "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS"


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
    """Whether a server can listen on ``port`` now. The probe binds with ``SO_REUSEADDR``,
    as the App's server does, so a port whose last connections linger in TIME_WAIT (an App
    that was just stopped) counts as free; one that something listens on does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def choose_port(address: str, wanted: int, wait_s: float = PORT_WAIT_S) -> int:
    """``wanted`` if it is free within ``wait_s`` seconds, else the next free port (said)."""
    deadline = time.monotonic() + wait_s
    while not port_is_free(address, wanted):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    else:
        return wanted
    for port in range(wanted + 1, wanted + PORT_SEARCH):
        if port_is_free(address, port):
            print(
                f"Port {wanted} on {address} is in use (another App or program listens on "
                f"it); using port {port} instead. To get {wanted}, stop what listens on it "
                f"(e.g. `lsof -i :{wanted}`), or pass another port (make app PORT=<n>).",
                flush=True,
            )
            return port
    raise SystemExit(
        f"Ports {wanted}-{wanted + PORT_SEARCH - 1} on {address} are all in use; "
        f"free one or pass another start port (make app PORT=<n>)."
    )


def app_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with what the App and its worker need: the
    plugins folder that holds this checkout and scheduling on (a value set already is kept,
    so ``FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=false`` turns scheduling off)."""
    env = dict(os.environ if environ is None else environ)
    if not plugins_dir_containing_checkout(env.get("FIFTYONE_PLUGINS_DIR")):
        before = env.get("FIFTYONE_PLUGINS_DIR")
        env["FIFTYONE_PLUGINS_DIR"] = link_plugins_dir(os.path.join(ROOT, ".app-data", "plugins"))
        if before:
            print(
                f"FIFTYONE_PLUGINS_DIR={before} does not contain this checkout; using "
                f"{env['FIFTYONE_PLUGINS_DIR']} for this App.",
                flush=True,
            )
    env.setdefault(SCHEDULING_ENV, "true")
    env.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    return env


def worker_command(environ: dict[str, str]) -> str:
    """The command that starts a worker for the runs scheduled from an App started with
    ``environ`` (:func:`fiftyone_ntt.fiftyone.app.scheduling.worker_command`)."""
    from fiftyone_ntt.fiftyone.app.scheduling import worker_command as command

    return command(environ)


def run_worker() -> int:
    """``make worker``: ``fiftyone delegated launch`` with the App's environment."""
    env = app_environment()
    print(f"Starting a worker for scheduled runs:\n  {worker_command(env)}\n", flush=True)
    fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    if not os.access(fiftyone, os.X_OK):
        fiftyone = "fiftyone"
    try:
        return subprocess.call([fiftyone, "delegated", "launch"], env=env)
    except KeyboardInterrupt:
        return 0


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


def start_server(port: int, address: str):
    """FiftyOne's App server on ``port`` (``fiftyone.core.service.ServerService``, the
    process ``fo.launch_app`` starts), with no Python session attached to it."""
    import fiftyone as fo
    import fiftyone.core.service as fosv

    service = fosv.ServerService(port, address=address, do_not_track=fo.config.do_not_track)
    if service.child is None:
        raise SystemExit(
            f"A FiftyOne App server already answers on {address}:{port}; stop it, or pass "
            f"another port (make app PORT=<n>)."
        )
    return service


def show_dataset(url: str, dataset) -> None:
    """Tell the App server at ``url`` to show ``dataset``: one ``state_update`` event with the
    state ``fo.launch_app(dataset)`` starts from, posted once. Nothing stays subscribed, so
    nothing can later push this state back over the dataset the user opened in the App."""
    from dataclasses import asdict

    import fiftyone as fo
    from bson import json_util
    from fiftyone.core.odm.workspace import default_workspace_factory
    from fiftyone.core.session.events import StateUpdate, dict_factory
    from fiftyone.core.state import StateDescription, build_color_scheme

    config = fo.app_config.copy()
    state = StateDescription(
        dataset=dataset,
        group_slice=dataset.group_slice,
        spaces=default_workspace_factory(),
        color_scheme=build_color_scheme(None, dataset, config),
        config=config,
    )
    body = json_util.dumps(
        {
            "event": StateUpdate.get_event_name(),
            "data": asdict(StateUpdate(state=state), dict_factory=dict_factory),
            "subscription": f"ntt-launcher-{os.getpid()}",
        }
    )
    request = urllib.request.Request(
        url + "event",
        data=body.encode(),
        headers={"Content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
        if resp.status != 200:
            raise SystemExit(f"The FiftyOne App at {url} refused the dataset ({resp.status}).")


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
    parser.add_argument(
        "--worker",
        action="store_true",
        help="start a worker for scheduled runs (fiftyone delegated launch) instead of the App",
    )
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker()

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _raise_stop)

    os.environ.update(app_environment())

    server = None
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
        server = start_server(port, args.address)
        url = f"http://{args.address}:{port}/"

        def server_alive() -> bool:
            return server.child.poll() is None

        wait_for_http(url, HTTP_TIMEOUT_S, server_alive)
        show_dataset(url, dataset)
        if args.url_file:
            with open(args.url_file + ".tmp", "w") as f:
                f.write(url)
            os.replace(args.url_file + ".tmp", args.url_file)
        if fo.config.allow_legacy_orchestrators:
            scheduling = (
                'Scheduled runs ("Schedule" in the operators\' forms; views of more than 50\n'
                "samples always) wait for a worker. Start one in another terminal with\n"
                "`make worker`, or:\n"
                f"  {worker_command(dict(os.environ))}\n"
            )
        else:
            scheduling = (
                f"Scheduling is off ({SCHEDULING_ENV}={os.environ.get(SCHEDULING_ENV)}): "
                "operators run inside the App server.\n"
            )
        print(
            f"\nFiftyOne App: {url}\n"
            f"  dataset: {dataset.name} ({len(dataset)} samples)\n"
            f"  plugin:  {', '.join(plugins) or 'not found'} from {ROOT}\n"
            f"{scheduling}"
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
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
