#!/usr/bin/env bash
# The browser tier of `make test`: pytest over tests/e2e, its output in LOG.
#
#   scripts/e2e_tier.sh PYTHON LOG [pytest args...]
#
# A browser test that fails is run once more, with only the others that failed (pytest's
# --lf, from this tier's own cache folder: the unit + integration session runs beside it).
# Why: FiftyOne 1.22's App, under the load of the integration tier beside it, now and then
# loses a click or a label-painting worker that no plugin can prevent (docs/architecture.md,
# "The panel and the App's label painting"; docs/benchmarks.md, "The test suite"). A test that
# fails twice fails the tier; a real regression fails every time. Nothing is hidden: both
# attempts stay in LOG, the first attempt's artifacts are moved to
# test-artifacts/e2e-first-attempt/, and test-artifacts/e2e-reruns.txt lists every test that
# needed the second attempt and how it ended.
set -u
py=$1
log=$2
shift 2
artifacts=test-artifacts
cache=.pytest_cache_e2e
reruns=$artifacts/e2e-reruns.txt
mkdir -p "$artifacts"
rm -f "$reruns"

"$py" -m pytest tests/e2e -o cache_dir="$cache" --durations=10 "$@" >"$log" 2>&1
rc=$?
# 0: all passed; 5: nothing selected (PYTEST_ARGS deselected every browser test)
if [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ]; then
    exit "$rc"
fi

failed_in() { grep -E '^(FAILED|ERROR) ' "$1" | sed -E 's/^(FAILED|ERROR) ([^ ]+).*/\2/' | sort -u; }
failed=$(failed_in "$log")
first=$artifacts/e2e-first-attempt
rm -rf "$first"
mkdir -p "$first"
find "$artifacts" -maxdepth 1 -type f ! -name "$(basename "$log")" -exec mv {} "$first/" \;

{
    echo
    echo "==> e2e: the first attempt failed (exit $rc); once more, only what failed:"
    echo "${failed:-(no test named: see above)}"
    echo "    (the first attempt's screenshots and logs: $first/)"
    echo
} >>"$log"
second=$(mktemp)
"$py" -m pytest tests/e2e -o cache_dir="$cache" --lf --lfnf=none --durations=10 "$@" >"$second" 2>&1
again=$?
cat "$second" >>"$log"
# 5: the first attempt recorded no failed test to rerun (e.g. it crashed): its result stands
if [ "$again" -eq 5 ]; then
    again=$rc
fi
failed_again=$(failed_in "$second")
rm -f "$second"
{
    echo "# browser tests that failed once in this make test (exit $rc, then $again)"
    for test in $failed; do
        if [ "$again" -ne 0 ] && { [ -z "$failed_again" ] || grep -qxF "$test" <<<"$failed_again"; }; then
            echo "$test: failed twice"
        else
            echo "$test: passed on the second attempt"
        fi
    done
} >"$reruns"
echo "==> e2e reruns ($reruns):" >>"$log"
cat "$reruns" >>"$log"
exit "$again"
