"""Issue 20 (install the FiftyOne way): the plugin installed as its users install it,

    fiftyone plugins download <repo>
    fiftyone plugins requirements @fiftyone-ntt/no-time-to-train --install

with FiftyOne's own code: ``fiftyone.plugins.download_plugin`` fetches a zip of this checkout
(the files ``git archive`` would pack, as the working tree holds them, under one top folder as
GitHub's archives have) from a local HTTP server into an empty plugins folder; then FiftyOne's
requirements check (``--ensure``) passes in this environment, and FiftyOne lists the plugin's
operators and panel from the downloaded folder. Each step runs in a child process whose
plugins folder is that empty folder (the session's folder already holds the checkout).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

PLUGIN = "@fiftyone-ntt/no-time-to-train"
TOP = "fiftyone-ntt-main"  # GitHub's archives hold one folder, <repo>-<ref>


def _checkout_zip(repo_root: Path, out: Path) -> Path:
    """A zip of the checkout's tracked and not-ignored files (working-tree contents)."""
    names = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo_root,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in filter(None, names):
            path = repo_root / name
            if path.is_file():
                archive.write(path, f"{TOP}/{name}")
    return out


@pytest.fixture
def served_zip(repo_root, tmp_path):
    """URL of the checkout's zip on a loopback HTTP server (stopped afterwards)."""
    folder = tmp_path / "www"
    folder.mkdir()
    _checkout_zip(repo_root, folder / "fiftyone-ntt-main.zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fiftyone-ntt-main.zip"
    finally:
        server.shutdown()
        server.server_close()


def _run(env, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def _last_json(result: subprocess.CompletedProcess):
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_download_requirements_and_registration_the_fiftyone_way(served_zip, tmp_path):
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    env = {**os.environ, "FIFTYONE_PLUGINS_DIR": str(plugins_dir)}
    fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")

    # fiftyone plugins download <url>
    downloaded = _last_json(
        _run(
            env,
            sys.executable,
            "-c",
            "import json, sys, fiftyone.plugins as fop;"
            "print(json.dumps(fop.download_plugin(sys.argv[1])))",
            served_zip,
        )
    )
    assert list(downloaded) == [PLUGIN]
    plugin_dir = Path(downloaded[PLUGIN])
    assert plugin_dir == plugins_dir / "@fiftyone-ntt" / "no-time-to-train"  # FiftyOne's layout
    assert (plugin_dir / "requirements.txt").is_file()
    metadata = yaml.safe_load((plugin_dir / "fiftyone.yml").read_text())
    assert metadata["url"] == "https://github.com/fiftyone-ntt/fiftyone-ntt"

    # fiftyone plugins requirements <plugin> --print / --ensure (this environment has them)
    printed = _run(env, fiftyone, "plugins", "requirements", PLUGIN, "--print")
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "No requirements.txt found" not in printed.stdout + printed.stderr
    assert "transformers" in printed.stdout and "torch" in printed.stdout, printed.stdout
    ensure = _run(env, fiftyone, "plugins", "requirements", PLUGIN, "--ensure")
    assert ensure.returncode == 0, (ensure.stdout + ensure.stderr)[-3000:]

    # FiftyOne registers the downloaded plugin's operators and panel, from that folder
    listed = _last_json(
        _run(
            env,
            sys.executable,
            "-c",
            "import json, fiftyone.operators as foo, fiftyone.plugins as fop;"
            "print(json.dumps({'dirs': {p.name: p.directory for p in fop.list_plugins()},"
            "'uris': [o.uri for o in foo.list_operators(enabled=True)]}))",
        )
    )
    assert Path(listed["dirs"][PLUGIN]) == plugin_dir
    expected = {f"{PLUGIN}/{name}" for name in metadata["operators"] + metadata["panels"]}
    assert expected <= set(listed["uris"]), expected - set(listed["uris"])
