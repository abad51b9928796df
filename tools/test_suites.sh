#!/usr/bin/env bash
# The test suites CI runs (the README's test command): TensorFlow (everything but the `extended`
# tests, in two pytest-xdist workers; the doctests too) beside JAX then PyTorch (the model layer in
# tests/: not `slow`, not `pipeline`; one after the other), so that one suite's single-threaded stretches (XLA compiles,
# subprocesses starting Python) leave no core idle. Each suite writes its own log; a suite's log is
# printed whole when it fails, else its last lines (each log ends with its slowest tests: where CI's
# 30 minutes go). Exits non-zero when any suite fails.
#
# usage, from the repository root, with the package and its test extra installed:
#   bash tools/test_suites.sh                # the three suites
#   SUITES="jax torch" bash tools/test_suites.sh
# Environment: SUITES (default "tensorflow jax torch": TensorFlow beside the others, which run in
# turn), LOGS (a folder for the logs; default a new
# temporary one), PYTHON (default python).
# The extended tests (end-to-end repeats of paths CI checks in parts; see pyproject.toml's markers)
# run on demand: KERAS_BACKEND=tensorflow python -m pytest -q -m extended
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
SUITES=${SUITES:-tensorflow jax torch}
LOGS=${LOGS:-$(mktemp -d -t zoo-tests-XXXXXX)}
mkdir -p "$LOGS"

suite_args() {
  case "$1" in
    tensorflow) echo '-n 2 --dist loadfile -m "not extended" --durations=30' ;;
    jax|torch) echo 'tests -m "not slow and not pipeline and not extended" --durations=15' ;;  # the doctests: TensorFlow suite
    *) echo "unknown suite '$1': accepted: tensorflow, jax, torch" >&2; return 2 ;;
  esac
}

run_suite() {  # run_suite SUITE: its pytest command, into $LOGS/SUITE.log and SUITE.rc
  local args
  args=$(suite_args "$1") || { echo 2 > "$LOGS/$1.rc"; return; }
  echo "[tests] KERAS_BACKEND=$1 $PYTHON -m pytest -q $args  (log: $LOGS/$1.log)"
  eval "KERAS_BACKEND=$1 \"$PYTHON\" -m pytest -q $args" > "$LOGS/$1.log" 2>&1
  echo $? > "$LOGS/$1.rc"
  echo "[tests] $1 suite ended after $(( $(date +%s) - started )) s: exit $(cat "$LOGS/$1.rc")"
}

for suite in $SUITES; do suite_args "$suite" > /dev/null || exit 2; done
started=$(date +%s)
others=""
for suite in $SUITES; do
  if [ "$suite" = tensorflow ]; then run_suite tensorflow & else others="$others $suite"; fi
done
( for suite in $others; do run_suite "$suite"; done ) &
wait
failed=""
for suite in $SUITES; do
  rc=$(cat "$LOGS/$suite.rc" 2>/dev/null || echo 1)
  if [ "$rc" = 0 ]; then
    echo "===== $suite: passed"; tail -n 3 "$LOGS/$suite.log"
  else
    echo "===== $suite: FAILED (exit $rc); its whole log:"; cat "$LOGS/$suite.log"; failed="$failed $suite"
  fi
done
echo "[tests] all suites ended after $(( $(date +%s) - started )) s${failed:+; failed:$failed}"
[ -z "$failed" ]
