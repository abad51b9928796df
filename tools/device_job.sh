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
# 15 MiB tar parts (`rm -rf weights/NAME && cat NAME.tar.part* | tar -x` in a checkout), plus status.txt and logs.tar.gz.
# Make the next call at once (within 30 s) to ship the other model. The working tree that travels is
# capped at 64 MiB: move committed releases you are not retraining (weights/<name>/, ~42 MB each)
# out of the working tree for the call, and put them back after.
# Environment: OUT (required), ZOO_DEVICE_WORK (default /tmp/zoo-gpu), PYTHON (python3),
# SITE (/tmp/site), BUDGET_S (gpu_release.py --budget-s, default 480), RESUME=1 (start gpu_release.py
# again with --resume once it has stopped: runs cut by its budget continue).
# A gpu_release.py that died before writing gpu_release.json is started again with --resume.
set -u
: "${OUT:?OUT must name the folder whose files come back (the device tool sets it)}"
WAIT_S=${1:-500}
case "$WAIT_S" in ''|*[!0-9]*) echo "WAIT_S must be a number of seconds. Received: $WAIT_S" >&2; exit 2;; esac
shift || true
SIM=""
for arg in "$@"; do [ "$arg" = "--dry-run" ] && SIM=1; done
W=${ZOO_DEVICE_WORK:-/tmp/zoo-gpu}
REPO=$W/repo
PY=${PYTHON:-python3}
MAX_PARTS=3   # 3 x 15 MiB tar parts + the small files: within the 64 MiB a call brings back
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
mkdir -p "$W" "$OUT"
T0=$SECONDS
log() { echo "[$(date +%H:%M:%S) +$((SECONDS - T0))s] $*"; }
alive() { [ -f "$W/pid" ] && kill -0 "$(cat "$W/pid")" 2>/dev/null; }

launch() {  # gpu_release.py in a new session (it outlives the call); exec: no shell keeps the call's stdout open
  (cd "$REPO" && exec setsid nohup $PY scripts/gpu_release.py --out "$W/out" \
     --data-dir "$W/fashion-mnist" --overwrite --budget-s "${BUDGET_S:-480}" ${SIM:+--keep-scratch} "$@") >> "$W/gpu_release.log" 2>&1 < /dev/null &
  echo $! > "$W/pid"
  log "started gpu_release.py $*"
}

export PYTHONPATH=${SITE:-/tmp/site}
if [ ! -f "$W/started" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$PYTHONPATH" \
    build/device/wheels/*.whl > "$W/pip.log" 2>&1 || { cat "$W/pip.log"; exit 3; }
  $PY -c "import keras, jax, huggingface_hub, safetensors; print('keras', keras.__version__, 'jax', jax.__version__, jax.devices(), 'hf', huggingface_hub.__version__)" || exit 4
  mkdir -p "$REPO"
  tar --exclude=./build --exclude=./.git --exclude=./runs -cf - . | (cd "$REPO" && tar xf -)
  cp -r build/device/fashion-mnist "$W/fashion-mnist"
  touch "$W/started"
  launch "$@"
elif ! alive && { [ ! -f "$W/out/gpu_release.json" ] || [ "${RESUME:-}" = 1 ]; }; then
  rm -f "$W/out/gpu_release.json"
  launch --resume "$@"
fi

staged_root() {  # the checkout gpu_release.py stages into (--dry-run: its newest scratch copy, kept by --keep-scratch)
  if [ -n "$SIM" ]; then ls -td "${TMPDIR:-/tmp}"/zoo-gpu-release-*/repo 2>/dev/null | head -1; else echo "$REPO"; fi
}

ready() {  # a release record written since the start (not one the checkout had) and no release.py of it running
  local root name=$1 arch=${1%%.*}
  root=$(staged_root)
  [ -n "$root" ] && [ "$root/zoo/released/$name.json" -nt "$W/started" ] && ! pgrep -f "release.py runs/$arch-" > /dev/null
}

ship() {  # up to MAX_PARTS parts of release $1 into $OUT; the marker once the last part has gone
  local name=$1 n=0 part
  if [ ! -d "$W/parts-$name" ]; then
    mkdir -p "$W/parts-$name"
    (cd "$(staged_root)" && tar -cf "$W/$name.tar" "weights/$name" "zoo/released/$name.json")
    split -b 15M -d "$W/$name.tar" "$W/parts-$name/$name.tar.part"
  fi
  for part in "$W/parts-$name"/*.tar.part*; do
    [ -f "$part" ] || continue
    [ $n -ge $MAX_PARTS ] && break
    mv "$part" "$OUT/"
    n=$((n + 1))
  done
  if ls "$W/parts-$name"/*.tar.part* > /dev/null 2>&1; then
    log "shipped $n parts of $name; call again for the rest"
  else
    touch "$W/shipped-$name"
    log "shipped $name (last $n parts; $(du -h "$W/$name.tar" | cut -f1) in all)"
  fi
}

shipped=""
while [ $((SECONDS - T0)) -lt "$WAIT_S" ]; do
  for name in resnet34.fmnist xception_localizer.fmnist-loc; do
    if [ -z "$shipped" ] && [ ! -f "$W/shipped-$name" ] && ready "$name"; then
      ship "$name"
      shipped=$name
    fi
  done
  [ -n "$shipped" ] && break
  if ! alive; then
    log "gpu_release.py is not running (see status.txt); nothing left to ship"
    break
  fi
  sleep 5
done

{
  log "status"
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>&1 | head -1
  alive && echo "gpu_release.py running (pid $(cat "$W/pid"))" || echo "gpu_release.py not running"
  echo "== gpu_release.log"; tail -n 30 "$W/gpu_release.log"
  for f in "$W"/out/logs/*.log; do [ -f "$f" ] && { echo "== $f"; tail -c 2500 "$f"; }; done
  [ -f "$W/out/gpu_release.json" ] && { echo "== gpu_release.json"; cat "$W/out/gpu_release.json"; }
  ls "$W"/shipped-* 2>/dev/null
} > "$OUT/status.txt" 2>&1
tar -czf "$OUT/logs.tar.gz" -C "$W" out/logs $(cd "$W" && ls -d out/runs/* 2>/dev/null) gpu_release.log 2>/dev/null
tail -c 6000 "$OUT/status.txt"
ls -la "$OUT"
