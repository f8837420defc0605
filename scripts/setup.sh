#!/usr/bin/env bash
# Set up Ventriloquist on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv,
# the Python packages, and the verified face-landmark model. Safe to run again.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --dev    also the test and training tools (Xvfb, PulseAudio, pytest,
#                                  espeak-ng, sox, the `train` extra with PyTorch CPU)
#   bash scripts/setup.sh --jetson on a Jetson (JetPack 6): the venv also sees JetPack's TensorRT
#                                  (--system-site-packages), pycuda builds against /usr/local/cuda,
#                                  the kiosk display's X packages, GStreamer for csi://, the Jetson's
#                                  wheel versions (constraints/jetson.txt), pytest + onnx for
#                                  scripts/jetson-smoke.sh
# VENV=dir (default .venv) and CONSTRAINTS=file (pip -c) pick another virtualenv and versions; CI
# uses them to run the tests a second time against constraints/jetson.txt. PYTHON= picks the
# interpreter: a command (python3.10), or a version (3.10) that is looked for (on PATH, then among
# pyenv's builds) and, when absent, installed with uv (`uv python install`, which downloads a python-build-standalone build; it
# exits 69 when that cannot be had, as on a machine that reaches only package registries).
# EXTRAS="[dev]" overrides the extras the mode installs. In a root-owned folder (/opt/ventriloquist)
# run it with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
  ""|--dev|--jetson) ;;
  *) echo "setup: unknown option $mode (use --dev or --jetson)" >&2; exit 2 ;;
esac
dev=0
[ "$mode" = "--dev" ] && dev=1
jetson=0
[ "$mode" = "--jetson" ] && jetson=1
venv="${VENV:-.venv}"
constraints="${CONSTRAINTS:-}"
[ "$jetson" = 1 ] && constraints="${constraints:-constraints/jetson.txt}"
if [ "$jetson" = 1 ] && [ ! -f "${NV_TEGRA_RELEASE:-/etc/nv_tegra_release}" ]; then
  echo "setup: --jetson is for a Jetson with JetPack 6, and this machine has no /etc/nv_tegra_release; use bash scripts/setup.sh" >&2
  exit 1
fi

apt_packages=(python3-venv libportaudio2 libgl1 libglib2.0-0 libegl1 libfontconfig1 libdbus-1-3
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xkb1 libxcb-shape0 libxcb-cursor0)
dev_packages=(xvfb matchbox-window-manager imagemagick x11-utils wmctrl xinit xserver-xorg-core pulseaudio pulseaudio-utils
  libasound2-plugins systemd espeak-ng libespeak-ng1 espeak-ng-data sox chromium chromium-driver
  gstreamer1.0-tools gstreamer1.0-plugins-base)
# JetPack's apt repository has python3-libnvinfer (TensorRT's Python bindings) and, with
# nvidia-l4t-gstreamer, nvarguscamerasrc; pycuda is an sdist and compiles
jetson_packages=(python3-dev build-essential python3-libnvinfer xinit xserver-xorg-core matchbox-window-manager
  gstreamer1.0-tools gstreamer1.0-plugins-base nvidia-l4t-gstreamer)
[ "$dev" = 1 ] && apt_packages+=("${dev_packages[@]}")
[ "$jetson" = 1 ] && apt_packages+=("${jetson_packages[@]}")

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
if [[ "$python" =~ ^[0-9]+\.[0-9]+$ ]]; then  # a version: that Python, installed with uv if need be
  version="$python"
  python=""
  # on PATH, or a pyenv-built one (pyenv's shim exists even where that version is not selected)
  for candidate in "python$version" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version"; do
    if "$candidate" -c "import sys, venv; assert sys.version.startswith('$version.')" >/dev/null 2>&1; then
      python="$(command -v "$candidate")"
      break
    fi
  done
  if [ -z "$python" ]; then
    uv_venv="build/uv"
    [ -x "$uv_venv/bin/uv" ] || { python3 -m venv "$uv_venv" && "$uv_venv/bin/python" -m pip install -q uv; }
    echo "setup: installing Python $version with uv"
    if ! "$uv_venv/bin/uv" python install "$version" >"$uv_venv/install.log" 2>&1; then
      echo "setup: Python $version is not installed and uv could not install it: $(grep -m1 -E 'cause|error' "$uv_venv/install.log")" >&2
      exit 69  # EX_UNAVAILABLE: CI tells this apart from a failing test run
    fi
    python="$("$uv_venv/bin/uv" python find "$version")"
  fi
fi
venv_flags=()
if [ "$jetson" = 1 ]; then
  venv_flags=(--system-site-packages)  # JetPack's tensorrt is installed for the system Python only
  if [ -f "$venv/pyvenv.cfg" ] && grep -q "include-system-site-packages = false" "$venv/pyvenv.cfg"; then
    echo "setup: $venv was made without --system-site-packages, so it cannot see TensorRT; rm -rf $venv and run again" >&2
    exit 1
  fi
  export CUDA_ROOT=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH"  # pycuda's build looks for nvcc
  if ! command -v nvcc >/dev/null; then
    echo "setup: no CUDA toolkit in /usr/local/cuda (pycuda needs nvcc); sudo apt-get install nvidia-jetpack" >&2
    exit 1
  fi
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "${venv_flags[@]}" "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
pip_constraints=()
[ -n "$constraints" ] && pip_constraints=(-c "$constraints")
extras=""
[ "$dev" = 1 ] && extras="[dev,train]"
[ "$jetson" = 1 ] && extras="[jetson,device-tests]"
extras="${EXTRAS:-$extras}"  # CI's Jetson pass: [dev] alone (a Jetson never trains; no PyTorch for its Python)
"$venv/bin/python" -m pip install -q "${pip_constraints[@]}" -e ".${extras}"
# mediapipe brings opencv-contrib-python; a stray opencv-python would shadow its cv2.
if "$venv/bin/python" -m pip show -q opencv-python >/dev/null 2>&1; then
  "$venv/bin/python" -m pip uninstall -q -y opencv-python
  "$venv/bin/python" -m pip install -q "${pip_constraints[@]}" --force-reinstall --no-deps opencv-contrib-python
fi
"$venv/bin/ventriloquist" models fetch
# the venv must be whole: pip's own check, and every runtime module imported from it (with
# --system-site-packages JetPack's numpy-1 builds could shadow the venv's)
"$venv/bin/python" -m pip check
modules=(numpy cv2 mediapipe av onnxruntime sounddevice yaml pydantic cysystemd)
if [ "$jetson" = 1 ]; then
  "$venv/bin/python" scripts/check_imports.py "${modules[@]}" tensorrt pycuda.driver --system tensorrt
  # JetPack 6.0 ships TensorRT 8.6, whose networks from this code are implicit-batch: refused by the parser
  "$venv/bin/python" -c "
import sys, tensorrt
major = int(tensorrt.__version__.split('.')[0])
sys.exit(0 if major >= 10 else f'setup: TensorRT {tensorrt.__version__} is older than 10 (JetPack 6.0); upgrade to JetPack 6.1+: sudo apt-get install nvidia-jetpack')"
else
  "$venv/bin/python" scripts/check_imports.py "${modules[@]}"
fi
echo "setup: done. Run: $venv/bin/ventriloquist run"
