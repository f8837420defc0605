#!/usr/bin/env bash
# Install the kiosk on a Jetson (or any Debian/Ubuntu box): the service user, the units, the
# config under /etc, and enable them. Run from the project folder as root, after
# `bash scripts/setup.sh` has built .venv:
#
#   sudo bash systemd/install.sh            # install and enable
#   sudo bash systemd/install.sh --start    # … and start now
#   ROOT=/tmp/stage bash systemd/install.sh --no-systemctl   # stage the files only (tests)
#
# The app lives in /opt/ventriloquist: clone the project there and run scripts/setup.sh there
# (a virtualenv cannot be moved once built).
set -euo pipefail

ROOT="${ROOT:-}"
START=0
SYSTEMCTL=1
for arg in "$@"; do
  case "$arg" in
    --start) START=1 ;;
    --no-systemctl) SYSTEMCTL=0 ;;
    *) echo "unknown option $arg (use --start or --no-systemctl)" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "$0")/.." && pwd)"
app="$ROOT/opt/ventriloquist"
units="$ROOT/etc/systemd/system"
config_dir="$ROOT/etc/ventriloquist"

if [[ -z "$ROOT" && $EUID -ne 0 ]]; then
  echo "install.sh: run as root (sudo), or set ROOT= to stage into a folder" >&2
  exit 1
fi
if [[ ! -x "$here/.venv/bin/ventriloquist" ]]; then
  echo "install.sh: $here/.venv is missing; run 'bash scripts/setup.sh' first" >&2
  exit 1
fi

# 1. the service user: no login, no home, in the groups that own the camera, sound and GPU
if [[ -z "$ROOT" ]]; then
  if ! id ventriloquist >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /opt/ventriloquist --shell /usr/sbin/nologin ventriloquist
  fi
  for group in audio video render; do
    getent group "$group" >/dev/null && usermod -aG "$group" ventriloquist
  done
fi

# 2. the app
if [[ -z "$ROOT" ]]; then
  if [[ "$(realpath "$here")" != "/opt/ventriloquist" ]]; then
    echo "install.sh: the app must live in /opt/ventriloquist (it is in $here);" >&2
    echo "  clone it there, run 'bash scripts/setup.sh' there, then this script" >&2
    exit 1
  fi
else
  mkdir -p "$(dirname "$app")"
  ln -sfn "$here" "$app"  # staging: point at this checkout
fi

# 3. the config: never overwrite the operator's. The service user owns the folder, so the console
#    can replace the file atomically (a new file renamed over it) and keep the previous as .bak.
mkdir -p "$config_dir"
[[ -z "$ROOT" ]] && chown ventriloquist:ventriloquist "$config_dir"
if [[ ! -f "$config_dir/config.yaml" ]]; then
  install -m 0644 "$here/config/default.yaml" "$config_dir/config.yaml"
  echo "installed the default config at $config_dir/config.yaml; edit it, then: systemctl reload ventriloquist"
fi

# 4. the units
mkdir -p "$units"
for unit in ventriloquist.service ventriloquist-engine.service ventriloquist-display.service; do
  install -m 0644 "$here/systemd/$unit" "$units/$unit"
done

# 5. the desktop's display manager (gdm3 on JetPack's desktop image) would start its own X on the
#    same VT and fight the kiosk display: disable and mask it, as `systemctl disable` + `mask` do
#    (files, so a staged install can be checked). Undo: rm the mask link, systemctl enable gdm3.
display_manager=""
if [[ -L "$units/display-manager.service" ]]; then
  display_manager="$(basename "$(readlink "$units/display-manager.service")")"
  rm -f "$units/display-manager.service"
  if [[ "$display_manager" != ventriloquist-* ]]; then
    ln -sfn /dev/null "$units/$display_manager"
    echo "masked the display manager $display_manager (the kiosk display replaces it)"
  fi
fi

if [[ $SYSTEMCTL -eq 1 ]]; then
  systemctl daemon-reload
  systemctl set-default graphical.target
  systemctl enable ventriloquist-display.service ventriloquist-engine.service ventriloquist.service
  if [[ $START -eq 1 ]]; then
    [[ -n "$display_manager" ]] && systemctl stop "$display_manager"
    systemctl restart ventriloquist-display.service ventriloquist.service
  fi
  echo "enabled; status: systemctl status ventriloquist  ·  logs: journalctl -u ventriloquist -f"
  echo "health: curl http://127.0.0.1:8095/healthz"
fi
