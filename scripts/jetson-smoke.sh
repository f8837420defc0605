#!/usr/bin/env bash
# On-device smoke test for a Jetson (JetPack 6), after `bash scripts/setup.sh --jetson` and
# `sudo bash systemd/install.sh`. Run it from the project folder (/opt/ventriloquist) as root:
#
#   sudo bash scripts/jetson-smoke.sh                 # every step, stops at the first that is not PASS
#   sudo bash scripts/jetson-smoke.sh --keep-going    # every step whatever happens
#   bash scripts/jetson-smoke.sh --only engine,csi    # some steps
#
# Steps:
#   device        L4T release, GPU nodes, nodes the kiosk's sandbox would block, the argus socket
#   engine        builds the TensorRT engines (50 and 20 ms models) in a scratch folder, checks parity from another
#                 thread, closes; exit 0 and no [TRT] [E] / PyCUDA warning / traceback / crash
#   reload        the same again: the engine now comes from the cache, no rebuild
#   timing-cache  the timing cache deliberately corrupted, the engine deleted: the build survives
#   service       gdm must not own the screen; restarts the engine and kiosk units with csi://0 as the
#                 camera (a drop-in under /run, removed afterwards); from inside the hardened unit
#                 /metrics must report the TensorRT backend, then after 30 s fps > 25 and no camera
#                 restart; prints fps and the stage times
#   csi           30 frames from csi://0 through the GStreamer pipe
#   tests         the hardware-marked tests
#   bench         per-stage timings on the TensorRT engine
# Each step prints PASS, FAIL or MISSING (a part this machine lacks) and why. Exit status: 0 all
# passed, 1 a step failed, 2 a part is missing. Environment: VENV (default .venv), SMOKE_CSI_SOURCE
# (a sources.csi_source to use instead of nvarguscamerasrc, e.g. videotestsrc for a dry run),
# VENTRILOQUIST_TOKEN (the console token, if one is set, for /metrics), SMOKE_METRICS_URL (default
# http://127.0.0.1:8095/metrics), SMOKE_SERVICE_S (30) and SMOKE_MIN_FPS (25) for the service step,
# TEGRA_ROOT (default /: where /etc, /dev, /sys and /run are; a fixture tree for a dry run).
set -uo pipefail
cd "$(dirname "$0")/.."
tegra="${TEGRA_ROOT:-}"

ALL_STEPS=(device engine reload timing-cache service csi tests bench)
keep_going=0
steps=("${ALL_STEPS[@]}")
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-going) keep_going=1 ;;
    --only) IFS=, read -r -a steps <<<"${2:?--only needs a list of steps}"; shift ;;
    *) echo "jetson-smoke: unknown option $1 (use --keep-going or --only step,step)" >&2; exit 2 ;;
  esac
  shift
done

venv="${VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  echo "[MISSING] setup: $venv is missing; run: bash scripts/setup.sh --jetson"
  exit 2
fi
py="$venv/bin/python"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
engines="$work/engines"
cat >"$work/engine.yaml" <<EOF
inference:
  backend: tensorrt
  engine_dir: $engines
EOF
{ cat "$work/engine.yaml"; printf 'model:\n  lookahead_ms: 20\n'; } >"$work/engine20.yaml"  # the 20 ms model
# what a clean build and exit never prints
NOISE='\[TRT\] \[E\]|PyCUDA WARNING|PyCUDA ERROR|cuCtx|out-of-thread|context stack|Traceback|Segmentation fault|core dumped'

detail=""
app() { "$py" -m firmware_app "$@"; }

# run_logged NAME ARGS…: the command's stdout/stderr in $work/NAME.out/.err, its status in $rc
run_logged() {
  local name="$1"; shift
  app "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
}

clean_exit() {  # clean_exit NAME [EXPECTED]: exit 0 and nothing in NOISE on stdout or stderr but lines matching EXPECTED
  local name="$1" expected="${2:-^$}" noise
  # both streams: TensorRT's own logger prints to stdout (the app forwards it into logging, on stderr)
  noise="$(cat "$work/$name.out" "$work/$name.err" | grep -E -v "$expected" | grep -E -m1 "$NOISE")"
  if [ "$rc" -ne 0 ]; then detail="exit status $rc: $(grep -v '^\s*$' "$work/$name.err" | tail -2 | tr '\n' ' ')"; return 1; fi
  if [ -n "$noise" ]; then detail="the output has: $noise"; return 1; fi
  return 0
}

engine_line() { grep -m1 "^engine:" "$work/$1.out" | sed 's/^engine: //'; }

need_tensorrt() {
  if ! "$py" -c "import tensorrt, pycuda.driver" 2>/dev/null; then
    detail="TensorRT or pycuda does not import in $venv (bash scripts/setup.sh --jetson)"; return 2
  fi
}

step_device() {
  local config=()  # the installed config: its camera and microphone are what the kiosk will open
  [ -f "$tegra/etc/ventriloquist/config.yaml" ] && config=(--config "$tegra/etc/ventriloquist/config.yaml")
  app doctor --device "${config[@]}" >"$work/device.out" 2>"$work/device.err"
  rc=$?
  grep -E -A1 "^(L4T release|GPU nodes|sandbox devices|other Tegra nodes|TensorRT version|camera|argus socket|capture devices|GStreamer) " "$work/device.out" | grep -v '^--' | sed 's/^/          /'
  if [ ! -f "$tegra/etc/nv_tegra_release" ]; then detail="no /etc/nv_tegra_release: not a Jetson"; return 2; fi
  if [ "$rc" -ne 0 ]; then
    grep -E "^(✗|FAIL|  fix)|rror" "$work/device.out" "$work/device.err" | tail -8 | sed 's/^/          /'
    detail="doctor --device reports a missing part (above)"; return 1
  fi
  detail="$(head -1 "$tegra/etc/nv_tegra_release")"
}

step_engine() {
  need_tensorrt || return 2
  rm -rf "$engines"
  local started=$SECONDS
  run_logged engine engine build --config "$work/engine.yaml"
  clean_exit engine || return 1
  grep -q "building TensorRT engine" "$work/engine.err" || { detail="no build happened (engine found in an empty folder?)"; return 1; }
  grep -q "^engine: OK: tensorrt" "$work/engine.out" || { detail="$(engine_line engine)"; return 1; }
  run_logged engine20 engine build --config "$work/engine20.yaml"
  clean_exit engine20 || return 1
  grep -q "^engine: OK: tensorrt" "$work/engine20.out" || { detail="20 ms model: $(engine_line engine20)"; return 1; }
  detail="both models built in $((SECONDS - started)) s, closed cleanly; $(engine_line engine); 20 ms: $(engine_line engine20)"
}

step_reload() {
  need_tensorrt || return 2
  [ -n "$(ls "$engines"/*.engine 2>/dev/null)" ] || { detail="no engine to reload (run the engine step first)"; return 1; }
  run_logged reload engine build --config "$work/engine.yaml"
  clean_exit reload || return 1
  if grep -q "building TensorRT engine" "$work/reload.err" || ! grep -q "loaded cached engine" "$work/reload.err"; then
    detail="the cached engine was not reused"; return 1
  fi
  grep -q "^engine: OK: tensorrt" "$work/reload.out" || { detail="$(engine_line reload)"; return 1; }
  detail="loaded from the cache; $(engine_line reload)"
}

step_timing_cache() {
  need_tensorrt || return 2
  local caches=("$engines"/timing-*.cache)
  [ -f "${caches[0]}" ] || { detail="the build saved no timing cache"; return 1; }
  for cache in "${caches[@]}"; do printf 'not a timing cache\0\1\2' >"$cache"; done
  rm -f "$engines"/*.engine "$engines"/*.json
  run_logged timing engine build --config "$work/engine.yaml"
  # TensorRT rightly complains about the corrupt file (in words that differ between releases)
  clean_exit timing "[Tt]iming ?[Cc]ache|[Ss]eriali[sz]ation|[Mm]agic tag" || return 1
  grep -q "^engine: OK: tensorrt" "$work/timing.out" || { detail="$(engine_line timing)"; return 1; }
  grep -q "starting an empty one" "$work/timing.err" || { detail="the corrupt timing cache was not noticed"; return 1; }
  detail="rebuilt with an empty timing cache; $(engine_line timing)"
}

metric() {  # metric NAME [LABEL]: its value in $work/metrics.txt
  grep -E "^$1(\{[^}]*${2:-}[^}]*\})? " "$work/metrics.txt" | head -1 | awk '{print $NF}'
}

read_metrics() {
  local auth=()
  [ -n "${VENTRILOQUIST_TOKEN:-}" ] && auth=(-H "Authorization: Bearer $VENTRILOQUIST_TOKEN")
  curl -fsS "${auth[@]}" "${SMOKE_METRICS_URL:-http://127.0.0.1:8095/metrics}" >"$work/metrics.txt" 2>/dev/null
}

restore_service() {  # the installed config again, as before the step
  rm -rf "$dropin_dir" "$tegra/run/ventriloquist-smoke"
  systemctl daemon-reload && systemctl restart ventriloquist.service
}

step_service() {
  if ! command -v systemctl >/dev/null || [ ! -f "$tegra/etc/systemd/system/ventriloquist.service" ]; then
    detail="the kiosk is not installed as a service here (sudo bash systemd/install.sh)"; return 2
  fi
  [ "$(id -u)" -eq 0 ] || { detail="needs root to restart the units (sudo)"; return 2; }
  need_tensorrt || return 2
  # the desktop would hold :0 and vt1 and the kiosk display could never start
  if systemctl is-active -q gdm 2>/dev/null; then
    detail="gdm is running and owns the screen: reboot (install.sh masked it), or run 'sudo bash systemd/install.sh --start' over SSH"
    return 1
  fi
  # csi://0 inside the hardened unit: the installed config with that camera, through a drop-in under /run
  local smoke_dir="$tegra/run/ventriloquist-smoke" config="$tegra/etc/ventriloquist/config.yaml"
  dropin_dir="$tegra/run/systemd/system/ventriloquist.service.d"
  mkdir -p "$smoke_dir" "$dropin_dir"
  CSI="${SMOKE_CSI_SOURCE:-}" "$py" - "$config" "$smoke_dir/config.yaml" <<'PY' || { detail="cannot read $config"; return 1; }
import os, sys, yaml
data = yaml.safe_load(open(sys.argv[1])) or {}
sources = data.setdefault("sources", {})
sources["camera"] = "csi://0"
if os.environ["CSI"]:
    sources["csi_source"] = os.environ["CSI"]
yaml.safe_dump(data, open(sys.argv[2], "w"))
PY
  chmod 0755 "$smoke_dir" && chmod 0644 "$smoke_dir/config.yaml"
  printf '[Service]\nExecStart=\nExecStart=%s run --kiosk --config %s\n' \
    "/opt/ventriloquist/.venv/bin/ventriloquist" "/run/ventriloquist-smoke/config.yaml" >"$dropin_dir/smoke.conf"
  trap 'restore_service >/dev/null 2>&1; rm -rf "$work"' EXIT
  systemctl daemon-reload
  systemctl restart ventriloquist-engine.service ventriloquist.service || { detail="systemctl restart failed"; return 1; }
  local backend="" deadline=$((SECONDS + 180))
  while [ $SECONDS -lt $deadline ]; do
    read_metrics && backend="$(grep -m1 '^ventriloquist_backend_info' "$work/metrics.txt")"
    [ -n "$backend" ] && break
    sleep 2
  done
  if [[ "$backend" != *tensorrt* ]]; then
    detail="metrics say '${backend:-nothing}'; $(journalctl -u ventriloquist -n 200 --no-pager 2>/dev/null | grep -m1 'inference backend' | sed 's/.*inference backend/inference backend/')"
    return 1
  fi
  sleep "${SMOKE_SERVICE_S:-30}"
  read_metrics || { detail="/metrics stopped answering (the kiosk restarted?)"; return 1; }
  local fps camera_restarts
  fps="$(metric ventriloquist_fps)"
  camera_restarts="$(metric ventriloquist_restarts_total 'part="camera"')"
  grep -E '^ventriloquist_stage_milliseconds' "$work/metrics.txt" | sed -E 's/^ventriloquist_stage_milliseconds\{stage="([^"]+)"\} /\1 ms /; s/^/          /'
  echo "          fps ${fps:-none}, camera restarts ${camera_restarts%.*} after ${SMOKE_SERVICE_S:-30} s with csi://0"
  if ! awk -v f="${fps:-0}" -v m="${SMOKE_MIN_FPS:-25}" 'BEGIN { exit !(f > m) }'; then
    detail="fps ${fps:-none} is not above ${SMOKE_MIN_FPS:-25} with csi://0 inside the unit"; return 1
  fi
  if [ "${camera_restarts%.*}" != "0" ] && [ -n "$camera_restarts" ]; then
    detail="the camera was reopened $camera_restarts times in ${SMOKE_SERVICE_S:-30} s"; return 1
  fi
  detail="$backend; fps $fps > ${SMOKE_MIN_FPS:-25}, no camera restart, csi://0 inside the hardened unit"
}

step_csi() {
  local source="${SMOKE_CSI_SOURCE:-}"
  if [ -z "$source" ] && ! gst-inspect-1.0 --exists nvarguscamerasrc 2>/dev/null; then
    detail="no nvarguscamerasrc (GStreamer for JetPack: nvidia-l4t-gstreamer)"; return 2
  fi
  { echo "sources:"; echo "  camera: csi://0"; [ -n "$source" ] && echo "  csi_source: '$source'"; } >"$work/csi.yaml"
  app doctor --capture 30 --config "$work/csi.yaml" >"$work/csi.out" 2>"$work/csi.err"
  local line
  line="$(grep -m1 "^capture csi://0" "$work/csi.out")"
  if [[ "$line" != *" OK "* ]]; then
    detail="${line:-$(grep -v '^\s*$' "$work/csi.err" | tail -2 | tr '\n' ' ')}"; return 1
  fi
  detail="$(echo "$line" | sed 's/  */ /g')"
}

step_tests() {
  if ! "$py" -c "import pytest, onnx" 2>/dev/null; then
    detail="pytest and onnx are not installed (bash scripts/setup.sh --jetson installs them)"; return 2
  fi
  "$py" -m pytest -m hardware -q -rs -p no:cacheprovider tests/test_inference.py tests/test_jetson.py >"$work/tests.out" 2>&1
  rc=$?
  local summary
  summary="$(tail -1 "$work/tests.out")"
  grep -E "^(FAILED|ERROR|SKIPPED)" "$work/tests.out" | sed 's/^/          /'
  if [ "$rc" -ne 0 ]; then detail="$summary"; return 1; fi
  [[ "$summary" == *passed* ]] || { detail="nothing ran: $summary"; return 2; }
  detail="$summary"
}

step_bench() {
  run_logged bench bench --config "$work/engine.yaml"
  if [ "$rc" -ne 0 ]; then detail="exit status $rc: $(tail -2 "$work/bench.err" | tr '\n' ' ')"; return 1; fi
  grep -E "mouth step|real-time factor" "$work/bench.out" | sed 's/^/          /'
  detail="see the lines above"
}

worst=0
stopped=""
for step in "${steps[@]}"; do
  if [ -n "$stopped" ]; then echo "[not run] $step"; continue; fi
  case " ${ALL_STEPS[*]} " in *" $step "*) ;; *) echo "jetson-smoke: no step '$step' (steps: ${ALL_STEPS[*]})" >&2; exit 2 ;; esac
  detail=""
  "step_${step//-/_}"
  status=$?
  case "$status" in
    0) echo "[PASS] $step: $detail" ;;
    2) echo "[MISSING] $step: $detail"; [ "$worst" -eq 0 ] && worst=2 ;;
    *) echo "[FAIL] $step: $detail"; worst=1; status=1 ;;
  esac
  if [ "$status" -ne 0 ] && [ "$keep_going" -eq 0 ]; then stopped="$step"; fi
done
[ -n "$stopped" ] && echo "stopped at '$stopped' (--keep-going runs the rest anyway)"
exit "$worst"
