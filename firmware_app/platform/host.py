"""What the operator sees of the appliance itself: the build it runs (version, and the git commit
when it runs from a checkout) and the host's health (CPU load, temperature where the board
reports it, disk free where the config lives, memory). Read from the kernel's own files: cheap
enough for a status poll once a second."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

THERMAL = Path("/sys/class/thermal")
MEMINFO = Path("/proc/meminfo")
GIT_WITHIN_S = 2.0


@functools.cache
def build_info() -> dict[str, str]:
    """The installed version and, from a checkout, its commit ("" when unknown: a wheel, no git)."""
    from importlib.metadata import PackageNotFoundError, version

    import firmware_app

    try:
        installed = version("ventriloquist")
    except PackageNotFoundError:
        installed = firmware_app.__version__
    return {"version": installed, "commit": _commit(Path(firmware_app.__file__).resolve().parent.parent)}


def _commit(checkout: Path) -> str:
    if not (checkout / ".git").exists():
        return ""
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=GIT_WITHIN_S, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def host_health(folder: Path | None) -> dict:
    """CPU load (1-minute average and cores), the hottest thermal zone (None where there is none),
    free disk of `folder` (the config's; the working directory when None), and memory."""
    load1, _, _ = os.getloadavg()
    disk = shutil.disk_usage(folder if folder is not None and folder.exists() else Path.cwd())
    memory = _meminfo()
    return {
        "load_1m": round(load1, 2),
        "cpus": os.cpu_count() or 1,
        "temperature_c": hottest_zone(),
        "disk_free_mb": disk.free >> 20,
        "disk_total_mb": disk.total >> 20,
        "memory_available_mb": memory.get("MemAvailable", 0) >> 10,
        "memory_total_mb": memory.get("MemTotal", 0) >> 10,
    }


def hottest_zone(root: Path = THERMAL) -> float | None:
    """The highest temperature any /sys/class/thermal zone reports (°C), None without one."""
    readings = []
    for zone in root.glob("thermal_zone*/temp"):
        try:
            readings.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue  # a zone that cannot be read now (some boards' sensors sleep)
    return round(max(readings), 1) if readings else None


def _meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    values = {}
    try:
        for line in MEMINFO.read_text().splitlines():
            name, _, rest = line.partition(":")
            values[name] = int(rest.split()[0]) if rest.split() else 0
    except (OSError, ValueError):
        pass
    return values
