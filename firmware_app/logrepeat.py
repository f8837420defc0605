"""A message that repeats is logged once, then counted: a fault that recurs five times a second
(a device reopened in a loop) must not flood the journal and hide the other faults.

Repeats are recognised by logger, level and message template (the text before its arguments are
filled in), so "microphone unavailable (%s); retrying in %.1f s" counts as one message whatever
the cause and wait. The first occurrence is logged; those within WINDOW_S after it are held back
and counted; the next one after the window is logged with that count.
"""

from __future__ import annotations

import logging
import threading

WINDOW_S = 60.0


class RepeatLimiter(logging.Filter):
    def __init__(self, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.window_s = window_s
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # → (last logged at, held back since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        with self._lock:
            logged_at, held = self._seen.get(key, (None, 0))
            if logged_at is not None and record.created - logged_at < self.window_s:
                self._seen[key] = (logged_at, held + 1)
                return False
            self._seen[key] = (record.created, 0)
        if held:
            # the count goes into the formatted text (the template may have arguments)
            record.msg = f"{record.getMessage()} [and {held} more like it in the {record.created - logged_at:.0f} s before]"
            record.args = None
        return True
