"""systemd's notify protocol (READY, WATCHDOG, STATUS) through libsystemd's own `sd_notify`
(cysystemd: 2.x for x86_64, 1.5.4 the newest with cp310 aarch64 wheels); silent outside systemd."""

from __future__ import annotations

import os
import time

from cysystemd.daemon import Notification, notify

WATCHDOG_EVERY_S = 1.0  # WatchdogSec=10: a ping a second leaves a wide margin


class Notifier:
    def __init__(self) -> None:
        # cysystemd logs an error for every message sent with no systemd listening: ask only under it
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._last_watchdog = 0.0
        self.ready_sent = False

    def frame_shown(self) -> None:
        """Called per displayed frame: READY once, then watchdog pings at most once a second."""
        self.alive("showing frames")

    def alive(self, status: str) -> None:
        """The process is doing its work (frames, or the demo's render and its wait for a camera):
        READY once with `status`, then watchdog pings at most once a second."""
        if not self.enabled:
            return
        if not self.ready_sent:
            notify(Notification.READY)
            notify(Notification.STATUS, status)
            self.ready_sent = True
        now = time.monotonic()
        if now - self._last_watchdog >= WATCHDOG_EVERY_S:
            notify(Notification.WATCHDOG)
            self._last_watchdog = now
