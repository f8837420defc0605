#!/usr/bin/env bash
# Install the kiosk on a Jetson (or any Debian/Ubuntu box): the service user, the units, the
# config under /etc, and enable them. Run from the project folder as root, after
# `bash scripts/setup.sh` has built .venv:
#
#   sudo bash systemd/install.sh            # install and enable
#   sudo bash systemd/install.sh --start    # … and start now
#   ROOT=/tmp/stage bash systemd/install.sh --no-systemctl   # stage the files only (tests)
#
# It checks that every program its units run exists, installing the kiosk display's X packages
# (xinit, xserver-xorg-core, matchbox-window-manager) with apt-get when they are missing. SYSFS=
# (default /sys) is where it looks for a CSI camera; PROGRAMS_ROOT= (default /) where for the programs.
#
# The app lives in /opt/ventriloquist: clone the project there and run scripts/setup.sh there
# (a virtualenv cannot be moved once built).
set -euo pipefail

ROOT="${ROOT:-}"
SYSFS="${SYSFS:-/sys}"
PROGRAMS_ROOT="${PROGRAMS_ROOT:-}"
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
  # A CSI board's /dev/video0 is the sensor's raw Bayer VI node (sysfs name "vi-output, <sensor> …"),
  # which OpenCV cannot read: the camera is csi://0 there (libargus debayers it).
  if [[ "$(head -c 9 "$SYSFS/class/video4linux/video0/name" 2>/dev/null)" == "vi-output" ]]; then
    sed -i 's|^  camera: v4l2:///dev/video0 |  camera: csi://0 |' "$config_dir/config.yaml"
    echo "/dev/video0 is a CSI sensor ($(head -1 "$SYSFS/class/video4linux/video0/name")): the config's camera is csi://0"
  fi
fi

# 4. the units
mkdir -p "$units"
for unit in ventriloquist.service ventriloquist-engine.service ventriloquist-display.service; do
  install -m 0644 "$here/systemd/$unit" "$units/$unit"
done

# 5. the desktop's display manager (gdm3 on JetPack's desktop image) would start its own X on the
#    same VT and fight the kiosk display: disable and mask it, as `systemctl disable` + `mask` do
#    (files, so a staged install can be checked). display-manager.service points at the alias
#    gdm3.service, whose real unit is gdm.service: both are masked, or gdm still starts by its real
#    name. Undo: rm the two mask links, systemctl enable gdm3.
display_managers=()
if [[ -L "$units/display-manager.service" ]]; then
  target="$(readlink "$units/display-manager.service")"
  rm -f "$units/display-manager.service"
  display_managers+=("$(basename "$target")")
  # an alias (a link to the real unit) in the package's unit folder: mask the real name too
  for lib in "$ROOT/lib/systemd/system" "$ROOT/usr/lib/systemd/system"; do
    if [[ -L "$lib/$(basename "$target")" ]]; then display_managers+=("$(basename "$(readlink "$lib/$(basename "$target")")")"); fi
  done
fi
for lib in "$ROOT/lib/systemd/system" "$ROOT/usr/lib/systemd/system"; do
  for dm in gdm.service gdm3.service; do [[ -e "$lib/$dm" || -L "$lib/$dm" ]] && display_managers+=("$dm"); done
done
masked=()
for dm in $(printf '%s\n' "${display_managers[@]}" | sort -u); do
  [[ "$dm" == ventriloquist-* ]] && continue
  ln -sfn /dev/null "$units/$dm"
  masked+=("$dm")
done
if [[ ${#masked[@]} -gt 0 ]]; then
  echo "masked the display manager ${masked[*]}: the kiosk display replaces it from the next reboot (until then the desktop owns the screen; or --start over SSH)"
fi

# 6. what the units run must exist: the kiosk display's X programs are not in a plain setup.sh
programs_missing() {
  local unit exe
  for unit in ventriloquist.service ventriloquist-engine.service ventriloquist-display.service; do
    # each Exec line's program and, for xinit, the programs it starts
    for exe in $(grep -E '^Exec(Start|StartPre)=' "$here/systemd/$unit" | sed -E 's/^[^=]+=[-+!@]*//' \
      | tr ' ' '\n' | grep -E '^/(usr/)?s?bin/|^/opt/'); do
      [[ "$exe" == /opt/ventriloquist/* ]] && exe="$app${exe#/opt/ventriloquist}" || exe="$PROGRAMS_ROOT$exe"
      [[ -x "$exe" ]] || echo "$exe ($unit)"
    done
  done
}
missing="$(programs_missing)"
if [[ -n "$missing" && -z "$ROOT" ]]; then
  echo "installing the kiosk display's programs (missing: $(echo "$missing" | tr '\n' ' '))"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    xinit xserver-xorg-core matchbox-window-manager >/dev/null || true
  missing="$(programs_missing)"
fi
if [[ -n "$missing" ]]; then
  echo "install.sh: the units run programs that are not installed:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  echo "  fix: sudo apt-get install xinit xserver-xorg-core matchbox-window-manager (X), bash scripts/setup.sh (.venv)" >&2
  exit 1
fi
echo "checked: every program the units run is installed"

if [[ $SYSTEMCTL -eq 1 ]]; then
  systemctl daemon-reload
  systemctl set-default graphical.target
  systemctl enable ventriloquist-display.service ventriloquist-engine.service ventriloquist.service
  if [[ $START -eq 1 ]]; then
    for dm in "${masked[@]}"; do
      if systemctl is-active -q "$dm"; then
        if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" && -z "${SSH_CONNECTION:-}" ]]; then
          echo "install.sh: not stopping $dm from inside its own desktop session (this terminal would die first);" >&2
          echo "  reboot, or run 'sudo bash systemd/install.sh --start' over SSH" >&2
          exit 1
        fi
        systemctl stop "$dm"
      fi
    done
    systemctl restart ventriloquist-display.service ventriloquist.service
  elif [[ ${#masked[@]} -gt 0 ]]; then
    echo "the desktop still owns the screen until it stops: reboot (or run this again with --start over SSH)"
  fi
  echo "enabled; status: systemctl status ventriloquist  ·  logs: journalctl -u ventriloquist -f"
  echo "health: curl http://127.0.0.1:8095/healthz"
fi
