"""The process's memory, watched over months of running.

A kiosk must not grow until the kernel kills it mid-sentence. The live loop reads its resident
size every few seconds (exported on /metrics); above `health.restart_above_mb` it asks to be
restarted (systemd starts it again within seconds) at a quiet moment, when nobody has been in
view or speaking for QUIET_S, or at once when far above the limit.
"""

from __future__ import annotations

import os
import time

from firmware_app.errors import ExitCode, VentriloquistError

QUIET_S = 30.0  # nobody in view or speaking for this long: a restart goes unseen
HARD_FACTOR = 1.25  # this far above the limit the restart does not wait for a quiet moment


class MemoryLimitReached(VentriloquistError):
    exit_code = ExitCode.RESTART


def resident_mb() -> float:
    """Resident set size of this process, MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def check_memory(limit_mb: int, resident: float, last_activity_at: float) -> None:
    """Raise MemoryLimitReached when the process should restart now (limit_mb 0: never)."""
    if limit_mb <= 0 or resident <= limit_mb:
        return
    quiet_for = time.monotonic() - last_activity_at
    if resident > HARD_FACTOR * limit_mb or quiet_for >= QUIET_S:
        raise MemoryLimitReached(
            f"resident memory {resident:.0f} MB is above health.restart_above_mb ({limit_mb} MB); restarting",
            "systemd restarts the kiosk (Restart=on-failure); if this repeats often, report it with the /metrics "
            "history",
        )
