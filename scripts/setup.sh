#!/usr/bin/env bash
# Set up Ventriloquist on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv,
# the Python packages, and the verified face-landmark model. Safe to run again.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --dev    also the test and training tools (Xvfb, PulseAudio, pytest,
#                                  espeak-ng, sox, the `train` extra with PyTorch CPU)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

apt_packages=(python3-venv libportaudio2 libgl1 libglib2.0-0 libegl1 libfontconfig1 libdbus-1-3
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xkb1 libxcb-shape0 libxcb-cursor0)
dev_packages=(xvfb matchbox-window-manager imagemagick x11-utils wmctrl xinit xserver-xorg-core pulseaudio pulseaudio-utils
  libasound2-plugins systemd espeak-ng libespeak-ng1 espeak-ng-data sox chromium chromium-driver)
[ "$dev" = 1 ] && apt_packages+=("${dev_packages[@]}")

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
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=""
[ "$dev" = 1 ] && extras="[dev,train]"
.venv/bin/python -m pip install -q -e ".${extras}"
# mediapipe brings opencv-contrib-python; a stray opencv-python would shadow its cv2.
if .venv/bin/python -m pip show -q opencv-python >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y opencv-python
  .venv/bin/python -m pip install -q --force-reinstall --no-deps opencv-contrib-python
fi
.venv/bin/ventriloquist models fetch
echo "setup: done. Run: .venv/bin/ventriloquist run"
