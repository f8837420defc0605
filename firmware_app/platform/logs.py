"""The process's log: one handler on stderr (the journal under systemd), as text or one JSON object
a line (`logging.format`), and a message that floods is logged once, then counted.

A fault that recurs five times a second (a device reopened in a loop) must not fill the journal
and hide the other faults. Repeats are recognised by logger, level and message template (the
text before its arguments are filled in), so "microphone unavailable (%s); retrying in %.1f s"
counts as one message whatever the cause and wait. A message is logged when it has not been seen
for QUIET_S (so a status line every 10 s always shows); within a flood it is held back and
counted, and the count is logged with the next occurrence at most WINDOW_S after the last one
logged (or after the flood ends). Audit lines (`extra={AUDIT: True}`: the console's writes) are
never folded: each is one change someone made.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

QUIET_S = 5.0
AUDIT = "audit"  # a record with this attribute set is never folded into a count
WINDOW_S = 60.0
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | None, fmt: str) -> None:
    """Replace the root logger's handlers with the one on stderr; `fmt` "json" or "text", `level`
    a name (None: info). Called again once the config is known, with its logging section."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RepeatLimiter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or "info").upper())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()})


class RepeatLimiter(logging.Filter):
    def __init__(self, window_s: float = WINDOW_S, quiet_s: float = QUIET_S) -> None:
        super().__init__()
        self.window_s, self.quiet_s = window_s, quiet_s
        self._seen: dict[tuple[str, int, str], tuple[float, float, int]] = {}  # → (logged at, seen at, held back)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, AUDIT, False):
            return True  # an audit line (`extra={AUDIT: True}`): each one is a change someone made
        key = (record.name, record.levelno, str(record.msg))
        now = record.created
        with self._lock:
            logged_at, seen_at, held = self._seen.get(key, (None, None, 0))
            if logged_at is not None and now - seen_at < self.quiet_s and now - logged_at < self.window_s:
                self._seen[key] = (logged_at, now, held + 1)
                return False
            self._seen[key] = (now, now, 0)
        if held:
            # the count goes into the formatted text (the template may have arguments)
            record.msg = f"{record.getMessage()} [and {held} more like it in the {now - logged_at:.0f} s before]"
            record.args = None
        return True
