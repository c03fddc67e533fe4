"""The files the command line writes (issue 19 §2, §3, §10): table-driven.

- An output that is one of the command's inputs (the same path, a symlink, ``..``, a hard
  link) is refused, with or without ``--overwrite``, and the input is left byte-identical.
- An existing output that fiftyone-ntt did not write (another kind of file) is refused
  unless ``--overwrite``; one of ours (a previous run's output) is replaced.
- An output that cannot be written (a folder, a file where a parent folder should be, a
  read-only file or folder) is refused with exit code 2 and a message naming the path and
  the fix, before any model loads (the loader is patched to fail the test if called); a
  missing parent folder is created.
- Banks, results, references, metrics and image-id mappings get the permissions ``open()``
  gives (``0o666 & ~umask``), not ``0o600``; writes stay atomic.

Every case runs ``fiftyone_ntt.cli.main`` on a small generated COCO dataset with the tiny
random-weight models. The read-only cases run in a child process; as root it drops the
capability that lets root write read-only files (CAP_DAC_OVERRIDE), as a user is.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import FAST, TINY, _write_split

from fiftyone_ntt.cli import main

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


# ------------------------------------------------------------------------------------------
# data: inputs, and one output of each kind written by the CLI itself ("ours")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_paths")
    train = _write_split(root / "train", [(150, 70), (160, 80)], 0, 0)
    (root / "train.json").write_text(json.dumps(train))
    first = {**train, "images": train["images"][:1]}
    first["annotations"] = [a for a in train["annotations"] if a["image_id"] == 1]
    (root / "targets.json").write_text(json.dumps(first))
    (root / "neg.json").write_text(json.dumps({**first, "annotations": first["annotations"][:1]}))
    quiet = ["--quiet"]
    sample = ["sample-references", str(root / "train.json"), "--shots", "1", "--seed", "1"]
    assert main([*quiet, *sample, "--out", str(root / "refs.json")]) == 0
    build = ["build-bank", str(root / "refs.json"), "--images", str(root / "train")]
    assert main([*quiet, *build, "--out", str(root / "bank.safetensors"), *TINY]) == 0
    predict = ["predict", str(root / "bank.safetensors"), str(root / "train" / "img_01.png")]
    assert main([*quiet, *predict, "--out", str(root / "results.json"), *FAST]) == 0
    assert (root / "results.images.json").is_file()
    evaluate = ["evaluate", str(root / "results.json"), "--gt", str(root / "targets.json")]
    assert main([*quiet, *evaluate, "--json", str(root / "metrics.json")]) == 0
    return root


@pytest.fixture
def d(base, tmp_path):
    """A fresh copy of the data for one case (a failing case must not spoil the others)."""
    return Path(shutil.copytree(base, tmp_path / "d", symlinks=True))


@pytest.fixture
def no_models(monkeypatch):
    """Fails the case if a model is loaded: every refusal must come before the models."""
    import fiftyone_ntt.cli._models as models

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a model was loaded before the output paths were checked")

    monkeypatch.setattr(models, "_load_model", refuse)
    return calls


def _hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file).encode() + file.read_bytes())
    return digest.hexdigest()


def _run(argv, capsys):
    code = main(["--quiet", *argv])
    return code, capsys.readouterr().err


def _refused(code, err, *fragments):
    assert code == 2, err
    assert "fiftyone-ntt: error: " in err, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# ------------------------------------------------------------------------------------------
# the commands that write files: argv for an output path, the option naming the output,
# and the inputs (label -> file under the data folder)


def _sample(d, out):
    return ["sample-references", str(d / "train.json"), "--shots", "1", "--seed", "1", "--out", out]


def _build(d, out):
    images = ["--images", str(d / "train"), "--negatives", str(d / "neg.json")]
    return ["build-bank", str(d / "refs.json"), *images, "--out", out, *TINY]


def _predict(d, out):
    targets = ["--targets", str(d / "targets.json"), "--images", str(d / "train")]
    return ["predict", str(d / "bank.safetensors"), *targets, "--out", out, *FAST]


def _predict_files(d, out):
    images = [str(d / "train" / "img_01.png"), str(d / "train" / "img_02.png")]
    return ["predict", str(d / "bank.safetensors"), *images, "--out", out, *FAST]


def _evaluate(d, out):
    return ["evaluate", str(d / "results.json"), "--gt", str(d / "targets.json"), "--json", out]


COMMANDS = {
    "sample-references": (_sample, "--out", {"ANN_JSON": "train.json"}),
    "build-bank": (
        _build,
        "--out",
        {"REF_JSON": "refs.json", "--negatives": "neg.json", "image": "train/img_02.png"},
    ),
    "predict": (
        _predict,
        "--out",
        {"BANK": "bank.safetensors", "--targets": "targets.json", "image": "train/img_01.png"},
    ),
    "predict image files": (
        _predict_files,
        "--out",
        {"BANK": "bank.safetensors", "image": "train/img_02.png"},
    ),
    "evaluate": (_evaluate, "--json", {"RESULTS_JSON": "results.json", "--gt": "targets.json"}),
}


# ------------------------------------------------------------------------------------------
# 1. the output is one of the inputs


def _same(d, path):
    return str(path)


def _symlink(d, path):
    link = d / "links" / "link"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(path)
    return str(link)


def _dotdot(d, path):
    (d / "sub").mkdir(exist_ok=True)
    return str(d / "sub" / ".." / path.relative_to(d))


def _hardlink(d, path):
    link = d / "links" / "hard"
    link.parent.mkdir(exist_ok=True)
    os.link(path, link)
    return str(link)


ALIASES = {"same path": _same, "symlink": _symlink, "..": _dotdot, "hard link": _hardlink}

INPUT_CASES = [
    (command, label, alias, overwrite)
    for command, (_, _, inputs) in COMMANDS.items()
    for label in inputs
    for alias in ALIASES
    for overwrite in (False, True)
]


@pytest.mark.parametrize(
    ("command", "label", "alias", "overwrite"),
    INPUT_CASES,
    ids=[f"{c}-{lab}-{a}-{'overwrite' if o else 'plain'}" for c, lab, a, o in INPUT_CASES],
)
def test_output_that_is_an_input_is_refused(d, capsys, no_models, command, label, alias, overwrite):
    argv_for, option, inputs = COMMANDS[command]
    source = d / inputs[label]
    out = ALIASES[alias](d, source)
    before = _hash(d)
    argv = [*argv_for(d, out), *(["--overwrite"] if overwrite else [])]
    code, err = _run(argv, capsys)
    _refused(code, err, f"{option} {out!r}", f"is the same file as the input {label}", "another")
    assert _hash(d) == before
    assert no_models == []


# ------------------------------------------------------------------------------------------
# 2. an existing output: another kind of file needs --overwrite; ours is replaced


def _text(d, path):
    path.write_text("my notes, not a fiftyone-ntt file\n")


def _coco_dataset(d, path):
    shutil.copy(d / "train.json", path)


def _png(d, path):
    shutil.copy(d / "train" / "img_01.png", path)


def _foreign_safetensors(d, path):
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"weight": np.zeros(3, np.float32)}, str(path), metadata={"format": "pt"})


def _results_list(d, path):
    shutil.copy(d / "results.json", path)


def _metrics(d, path):
    shutil.copy(d / "metrics.json", path)


def _bank(d, path):
    shutil.copy(d / "bank.safetensors", path)


def _references(d, path):
    shutil.copy(d / "refs.json", path)


def _mapping(d, path):
    shutil.copy(d / "results.images.json", path)


def _is_bank(path):
    from fiftyone_ntt.memory_bank import MemoryBank

    return MemoryBank.load(path).class_names == ("disc", "square", "bar")


def _is_references(path):
    return "sampled_from" in json.loads(path.read_text())["info"]["fiftyone_ntt"]


def _is_results(path):
    data = json.loads(path.read_text())
    return isinstance(data, list) and all("image_id" in r for r in data)


def _is_metrics(path):
    return "iou_types" in json.loads(path.read_text())


def _is_mapping(path):
    data = json.loads(path.read_text())
    return [r["id"] for r in data["images"]] == [1, 2]


#: command -> (output file name, where the existing file is, how to recognise ours)
OUTPUTS = {
    "sample-references": ("out.json", "out.json", _is_references),
    "build-bank": ("out.safetensors", "out.safetensors", _is_bank),
    "predict": ("out.json", "out.json", _is_results),
    "predict image files": ("out.json", "out.images.json", _is_mapping),
    "evaluate": ("out.json", "out.json", _is_metrics),
}

FOREIGN_CASES = [
    ("sample-references", "text", _text),
    ("sample-references", "COCO dataset", _coco_dataset),
    ("sample-references", "results list", _results_list),
    ("build-bank", "text", _text),
    ("build-bank", "safetensors of another tool", _foreign_safetensors),
    ("build-bank", "PNG image", _png),
    ("predict", "text", _text),
    ("predict", "COCO dataset", _coco_dataset),
    ("predict", "metrics", _metrics),
    ("predict", "memory bank", _bank),
    ("predict image files", "COCO dataset as the mapping", _coco_dataset),
    ("predict image files", "text as the mapping", _text),
    ("evaluate", "text", _text),
    ("evaluate", "results list", _results_list),
    ("evaluate", "COCO dataset", _coco_dataset),
]


@pytest.mark.parametrize(
    ("command", "make"),
    [(c, m) for c, _, m in FOREIGN_CASES],
    ids=[f"{c}-{what}" for c, what, _ in FOREIGN_CASES],
)
def test_existing_foreign_output_is_refused_without_overwrite(d, capsys, no_models, command, make):
    argv_for, _, _ = COMMANDS[command]
    name, existing, _ = OUTPUTS[command]
    make(d, d / existing)
    before = _hash(d)
    code, err = _run(argv_for(d, str(d / name)), capsys)
    _refused(code, err, repr(str(d / existing)), "not a", "written by fiftyone-ntt", "--overwrite")
    assert _hash(d) == before
    assert no_models == []


@pytest.mark.parametrize(
    ("command", "make"),
    [(c, m) for c, _, m in FOREIGN_CASES],
    ids=[f"{c}-{what}" for c, what, _ in FOREIGN_CASES],
)
def test_existing_foreign_output_is_replaced_with_overwrite(d, capsys, command, make):
    argv_for, _, _ = COMMANDS[command]
    name, existing, ours = OUTPUTS[command]
    make(d, d / existing)
    code, err = _run([*argv_for(d, str(d / name)), "--overwrite"], capsys)
    assert code == 0, err
    assert ours(d / existing)


OURS_CASES = [
    ("sample-references", _references),
    ("build-bank", _bank),
    ("predict", _results_list),
    ("predict image files", _mapping),
    ("evaluate", _metrics),
]


@pytest.mark.parametrize(("command", "make"), OURS_CASES, ids=[c for c, _ in OURS_CASES])
def test_an_output_of_ours_is_replaced_without_overwrite(d, capsys, command, make):
    argv_for, _, _ = COMMANDS[command]
    name, existing, ours = OUTPUTS[command]
    make(d, d / existing)
    if command == "predict image files":
        _results_list(d, d / name)
    before = (d / existing).stat().st_ino
    code, err = _run(argv_for(d, str(d / name)), capsys)
    assert code == 0, err
    assert ours(d / existing)
    assert (d / existing).stat().st_ino != before  # written anew (atomically: a new file)


# ------------------------------------------------------------------------------------------
# 3. outputs that cannot be written: found before any model loads


def _parent_is_a_file(d, name):
    return d / "train.json" / name, ["'" + str(d / "train.json") + "'", "is a file, not a folder"]


def _ancestor_is_a_file(d, name):
    return d / "train.json" / "a" / "b" / name, [
        "'" + str(d / "train.json") + "'",
        "is a file, not a folder",
    ]


def _is_a_folder(d, name):
    (d / "a_folder").mkdir()
    return d / "a_folder", ["is a folder", "give the path of a file"]


def _mapping_is_a_folder(d, name):
    (d / "out.images.json").mkdir()
    return d / "out.json", ["the image id mapping", "out.images.json", "is a folder"]


UNWRITABLE = {
    "parent is a file": _parent_is_a_file,
    "ancestor is a file": _ancestor_is_a_file,
    "output is a folder": _is_a_folder,
}

UNWRITABLE_CASES = [
    *((command, what) for command in COMMANDS for what in UNWRITABLE),
    ("predict image files", "mapping is a folder"),
]


@pytest.mark.parametrize(
    ("command", "what"), UNWRITABLE_CASES, ids=[f"{c}-{w}" for c, w in UNWRITABLE_CASES]
)
def test_unwritable_output_is_refused_before_the_models(d, capsys, no_models, command, what):
    argv_for, _, _ = COMMANDS[command]
    name = OUTPUTS[command][0]
    setup = _mapping_is_a_folder if what == "mapping is a folder" else UNWRITABLE[what]
    out, fragments = setup(d, name)
    before = _hash(d)
    code, err = _run(argv_for(d, str(out)), capsys)
    _refused(code, err, *fragments)
    assert _hash(d) == before
    assert no_models == []


@pytest.mark.parametrize("what", ["a file", "below a file"])
def test_protocol_output_dir_is_checked_before_fiftyone(d, capsys, monkeypatch, what):
    # FiftyOne must not even be imported: the check comes first.
    monkeypatch.setitem(sys.modules, "fiftyone_ntt.fiftyone.protocols.run", None)
    folder = d / "train.json" if what == "a file" else d / "train.json" / "x"
    argv = ["protocol", "custom", str(d / "refs.json"), str(d / "targets.json"), str(d)]
    code, err = _run([*argv, "--output-dir", str(folder)], capsys)
    _refused(code, err, "--output-dir", "is a file, not a folder")


@pytest.mark.parametrize(
    "command", ["sample-references", "evaluate", "build-bank"], ids=lambda c: str(c)
)
def test_missing_parent_folders_are_created(d, capsys, command):
    argv_for, _, _ = COMMANDS[command]
    name, _, ours = OUTPUTS[command]
    out = d / "new" / "deeper" / name
    code, err = _run(argv_for(d, str(out)), capsys)
    assert code == 0, err
    assert ours(out)


# read-only: in a child process, without root's power to write read-only files

_CHILD = """
import json, sys
import fiftyone_ntt.cli._models as models

def refuse(*args, **kwargs):
    print("MODEL LOADED", file=sys.stderr)
    sys.exit(3)

models._load_model = refuse
from fiftyone_ntt.cli import main
sys.exit(main(json.loads(sys.argv[1])))
"""


def _drop_root_override():  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_as_user(argv):
    """``main(argv)`` in a child process that cannot write read-only files."""
    as_root = os.geteuid() == 0
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps(["--quiet", *argv])],
            preexec_fn=_drop_root_override if as_root else None,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.SubprocessError as error:  # the capability could not be dropped
        if as_root:
            pytest.skip(f"cannot drop root's override capability here: {error}")
        raise
    return child.returncode, child.stderr


def _read_only_file(d, name):
    out = d / name
    _text(d, out)
    out.chmod(0o444)
    return out, ["is read-only", "chmod u+w"]


def _read_only_folder(d, name):
    folder = d / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / name, ["the folder", "'" + str(folder) + "'", "is not writable"]


def _missing_folder_in_read_only_folder(d, name):
    out, _ = _read_only_folder(d, name)
    return out.parent / "new" / name, [
        "'" + str(out.parent) + "'",
        "to create the missing folders in",
        "is not writable",
    ]


READ_ONLY = {
    "read-only file": _read_only_file,
    "read-only folder": _read_only_folder,
    "missing folder in a read-only folder": _missing_folder_in_read_only_folder,
}

READ_ONLY_CASES = [
    *((c, "read-only file") for c in ("sample-references", "build-bank", "predict", "evaluate")),
    ("predict", "read-only folder"),
    ("evaluate", "read-only folder"),
    ("build-bank", "missing folder in a read-only folder"),
    ("sample-references", "missing folder in a read-only folder"),
]


@pytest.mark.parametrize(
    ("command", "what"), READ_ONLY_CASES, ids=[f"{c}-{w}" for c, w in READ_ONLY_CASES]
)
def test_read_only_output_is_refused_before_the_models(d, command, what):
    argv_for, _, _ = COMMANDS[command]
    out, fragments = READ_ONLY[what](d, OUTPUTS[command][0])
    before = _hash(d)
    try:
        # --overwrite does not make a read-only file writable
        code, err = _run_as_user([*argv_for(d, str(out)), "--overwrite"])
    finally:
        for path in d.rglob("*"):
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert "MODEL LOADED" not in err
    _refused(code, err, *fragments)
    assert _hash(d) == before


# ------------------------------------------------------------------------------------------
# 4. permissions: what open() would give, whatever writer


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


UMASKS = (0o022, 0o002)

#: what is written -> (command, output name, files written)
WRITERS = {
    "memory bank": ("build-bank", "new.safetensors", ["new.safetensors"]),
    "results and image mapping": (
        "predict image files",
        "new.json",
        ["new.json", "new.images.json"],
    ),
    "results of --targets": ("predict", "new.json", ["new.json"]),
    "references": ("sample-references", "new.json", ["new.json"]),
    "metrics": ("evaluate", "new.json", ["new.json"]),
}

PERMISSION_CASES = [(w, m) for w in WRITERS for m in UMASKS]


@pytest.mark.parametrize(
    ("writer", "mask"), PERMISSION_CASES, ids=[f"{w}-{m:03o}" for w, m in PERMISSION_CASES]
)
def test_written_files_get_the_umask_permissions(d, capsys, writer, mask):
    command, name, written = WRITERS[writer]
    argv_for, _, _ = COMMANDS[command]
    with _umask(mask):
        code, err = _run(argv_for(d, str(d / name)), capsys)
    assert code == 0, err
    for file in written:
        assert _mode(d / file) == 0o666 & ~mask, (file, oct(_mode(d / file)))
    assert not [p.name for p in d.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"{m:03o}")
def test_library_writers_get_the_umask_permissions(d, tmp_path, mask):
    from fiftyone_ntt.coco import write_json
    from fiftyone_ntt.memory_bank import MemoryBank

    bank = MemoryBank.load(d / "bank.safetensors")
    with _umask(mask):
        bank.save(tmp_path / "lib.safetensors")
        write_json(tmp_path / "lib.json", {"a": 1})
    assert _mode(tmp_path / "lib.safetensors") == 0o666 & ~mask
    assert _mode(tmp_path / "lib.json") == 0o666 & ~mask


def test_replacing_a_file_keeps_its_mode_as_open_does(d, capsys):
    out = d / "refs-private.json"
    shutil.copy(d / "refs.json", out)
    out.chmod(0o640)
    with _umask(0o002):
        code, err = _run(_sample(d, str(out)), capsys)
    assert code == 0, err
    assert _mode(out) == 0o640


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(d):
    from fiftyone_ntt.coco import write_json

    out = d / "metrics.json"
    before = out.read_bytes()
    with pytest.raises(TypeError):
        write_json(out, {"not JSON": {1, 2}})
    assert out.read_bytes() == before
    assert not [p.name for p in d.iterdir() if p.name.endswith(".tmp")]


def _count_cases() -> dict[str, int]:
    """How many bad-input cases this file covers (reported in the issue)."""
    return {
        "CLI output is an input": len(INPUT_CASES),
        "CLI existing output not ours": 2 * len(FOREIGN_CASES) + len(OURS_CASES),
        "CLI unwritable output": len(UNWRITABLE_CASES) + 2 + 3 + len(READ_ONLY_CASES),
        "written file permissions": len(PERMISSION_CASES) + len(UMASKS) + 2,
    }


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(_count_cases()))
