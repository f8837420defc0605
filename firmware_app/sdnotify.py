"""systemd's notify protocol (READY, WATCHDOG, STATUS) without a dependency; silent outside systemd."""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET")
        self._last_watchdog = 0.0
        self.ready_sent = False

    def send(self, message: str) -> None:
        if not self.address:
            return
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)

    def frame_shown(self) -> None:
        """Called per displayed frame: READY once, then watchdog pings at most once a second."""
        if not self.ready_sent:
            self.send("READY=1\nSTATUS=showing frames")
            self.ready_sent = True
        now = time.monotonic()
        if now - self._last_watchdog >= 1.0:
            self.send("WATCHDOG=1")
            self._last_watchdog = now
