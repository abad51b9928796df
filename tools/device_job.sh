#!/bin/bash
# Runs scripts/gpu_release.py on a lent GPU machine through the workplace's `device` tool, whose
# calls bring back at most 8 files, 16 MiB each, 64 MiB together, and whose machine stays warm
# only 30 s after a call. Used for the 2026-11-30 release of xception_localizer.fmnist-loc.
#
# usage, from the repository root on the device (carry ["build/device"], see README "Releasing"):
#   bash tools/device_job.sh WAIT_S [ARGS...]        # first call: start; every call: ship what is ready
#   bash tools/device_job.sh WAIT_S --dry-run ...    # on a CPU: the plumbing, gpu_release.py --dry-run
# ARGS go to scripts/gpu_release.py on the first call (e.g. --variant "resnet34:b512=--batch-size 512").
#
# First call: installs build/device/wheels into /tmp/site (--no-deps --target), copies the
# checkout to $W/repo and starts gpu_release.py there in a new session, so it outlives the call
# while the machine is warm. Every call then waits up to WAIT_S seconds for a staged release not
# shipped yet and ships at most one (a float16 ResNet-34 or Xception is ~42 MB) into $OUT as
# 15 MiB tar parts (`cat NAME.tar.part* | tar -x` in a checkout), plus status.txt and logs.tar.gz.
# Make the next call at once (within 30 s) to ship the other model. The working tree that travels is
# capped at 64 MiB: move committed releases you are not retraining (weights/<name>/, ~42 MB each)
# out of the working tree for the call, and put them back after.
# Environment: OUT (required), ZOO_DEVICE_WORK (default /tmp/zoo-gpu), PYTHON (python3),
# SITE (/tmp/site), BUDGET_S (gpu_release.py --budget-s, default 900).
set -u
WAIT_S=${1:-500}
shift || true
SIM=""
for arg in "$@"; do [ "$arg" = "--dry-run" ] && SIM=1; done
W=${ZOO_DEVICE_WORK:-/tmp/zoo-gpu}
REPO=$W/repo
PY=${PYTHON:-python3}
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
mkdir -p "$W" "$OUT"
T0=$SECONDS
log() { echo "[$(date +%H:%M:%S) +$((SECONDS - T0))s] $*"; }

if [ ! -f "$W/started" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target ${SITE:-/tmp/site} \
    build/device/wheels/*.whl > "$W/pip.log" 2>&1 || { cat "$W/pip.log"; exit 3; }
  export PYTHONPATH=${SITE:-/tmp/site}
  $PY -c "import keras, jax, huggingface_hub, safetensors; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices(), 'hf', huggingface_hub.__version__)" || exit 4
  mkdir -p "$REPO"
  tar --exclude=./build --exclude=./.git --exclude=./runs -cf - . | (cd "$REPO" && tar xf -)
  cp -r build/device/fashion-mnist "$W/fashion-mnist"
  touch "$W/started"
  # exec: no subshell is left holding the call's stdout; setsid: survives the end of the call
  (cd "$REPO" && exec setsid nohup $PY scripts/gpu_release.py --out "$W/out" \
     --data-dir "$W/fashion-mnist" --overwrite --budget-s ${BUDGET_S:-900} "$@") > "$W/gpu_release.log" 2>&1 < /dev/null &
  log "started gpu_release.py"
fi

ROOT_STAGED=$REPO
[ -n "$SIM" ] && ROOT_STAGED=$(ls -d /tmp/zoo-gpu-release-*/repo 2>/dev/null | tail -1)

ready() {  # a release record written since the start (not one the checkout had) and no release.py of it running
  local name=$1 arch=${1%%.*}
  [ -n "$ROOT_STAGED" ] && [ "$ROOT_STAGED/zoo/released/$name.json" -nt "$W/started" ] && ! pgrep -f "release.py runs/$arch-" > /dev/null
}

shipped=""
while [ $((SECONDS - T0)) -lt "$WAIT_S" ]; do
  [ -n "$SIM" ] && ROOT_STAGED=$(ls -d /tmp/zoo-gpu-release-*/repo 2>/dev/null | tail -1)
  for name in resnet34.fmnist xception_localizer.fmnist-loc; do
    if [ -z "$shipped" ] && [ ! -f "$W/shipped-$name" ] && ready "$name"; then
      arch=${name%%.*}
      (cd "$ROOT_STAGED" && tar -cf "$W/$name.tar" "weights/$name" "zoo/released/$name.json")
      split -b 15M -d "$W/$name.tar" "$OUT/$name.tar.part"
      touch "$W/shipped-$name"
      shipped=$name
      log "shipped $name ($(du -h "$W/$name.tar" | cut -f1))"
    fi
  done
  [ -n "$shipped" ] && break
  if [ -f "$W/out/gpu_release.json" ]; then
    left=0
    for name in resnet34.fmnist xception_localizer.fmnist-loc; do
      [ ! -f "$W/shipped-$name" ] && ready "$name" && left=1
    done
    [ $left = 0 ] && { log "gpu_release.py finished; nothing left to ship"; break; }
  fi
  sleep 5
done

{
  log "status"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>&1 | head -1
  echo "== gpu_release.log"; tail -n 30 "$W/gpu_release.log"
  for f in "$W"/out/logs/*.log; do [ -f "$f" ] && { echo "== $f"; tail -c 2500 "$f"; }; done
  [ -f "$W/out/gpu_release.json" ] && { echo "== gpu_release.json"; cat "$W/out/gpu_release.json"; }
  ls "$W"/shipped-* 2>/dev/null
} > "$OUT/status.txt" 2>&1
tar -czf "$OUT/logs.tar.gz" -C "$W" out/logs $(cd "$W" && ls out/runs 2>/dev/null | sed 's|^|out/runs/|') gpu_release.log 2>/dev/null
tail -c 6000 "$OUT/status.txt"
ls -la "$OUT"
