"""The kiosk's signals as systemd sends them: SIGTERM (and SIGINT, Ctrl-C) ask for a clean stop
within the 2 s the unit promises, SIGHUP (`systemctl reload`, the console's apply) a re-read of
the config.

A handler runs on the main thread between two bytecodes of whatever the kiosk was doing there, so
it only records the request in `SignalState`, which the kiosk's loop reads when it next looks. The
stop's deadline is the one thing done in the handler itself: it must hold however the rest hangs.
"""

from __future__ import annotations

import collections
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

from firmware_app.errors import ExitCode, VentriloquistError

if TYPE_CHECKING:
    from firmware_app.config import Settings

log = logging.getLogger("ventriloquist")

STOP_DEADLINE_S = 1.8  # SIGTERM to exit: the kiosk promises 2 s

T = TypeVar("T")


class Latest(Generic[T]):
    """One value, the latest put, until taken. A handler may interrupt the main thread anywhere,
    also inside `take`: put and take are each one C call on a deque (not a read then a write of
    an attribute), so a value put meanwhile is never lost, it waits for the next take."""

    def __init__(self) -> None:
        self._slot: collections.deque[T] = collections.deque(maxlen=1)

    def put(self, value: T) -> None:
        self._slot.append(value)

    def take(self) -> T | None:
        try:
            return self._slot.popleft()
        except IndexError:
            return None


class Proved(NamedTuple):
    """A config that passed `prove_pipeline`, and its file's text (what a rollback writes back)."""

    settings: Settings
    text: str


@dataclass
class SignalState:
    """What the signals asked of the kiosk, written by the handlers and read by its loop."""

    stop: threading.Event = field(default_factory=threading.Event)  # set once, by the first stop asked
    reload: threading.Event = field(default_factory=threading.Event)  # a new config, or a new error for the card
    pending_settings: Latest[Proved] = field(default_factory=Latest)  # the proved config a SIGHUP read
    refusal: Latest[VentriloquistError] = field(default_factory=Latest)  # why a SIGHUP's config was refused
    stop_asked_at: float | None = None  # time.monotonic(): what the 2 s promise is measured from
    awaiting_fix: bool = False  # a broken config is on the error card: a refusal is news for it


def handle_signals(stop: Callable[[], bool], reload: Callable[[], None]) -> None:
    """SIGTERM and SIGINT call `stop`, which says whether it was the first stop asked: that one
    arms the deadline. SIGHUP calls `reload`. From the main thread (Python's rule for handlers)."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        if stop():
            exit_if_still_running_after(STOP_DEADLINE_S)

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        # off the main thread: the reload proves the new config (reads its files) while frames go on
        threading.Thread(target=reload, name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hangup)


def exit_if_still_running_after(seconds: float) -> None:
    """A stop must not hang on a device driver that never returns (PortAudio on a vanished sound
    server, a wedged camera): past the deadline the process exits, with every thread's stack in the
    log so the hang can be fixed."""

    def overdue() -> None:
        log.error("still stopping %.1f s after the signal; exiting now (thread stacks follow)", seconds)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(ExitCode.OK)

    timer = threading.Timer(seconds, overdue)
    timer.daemon = True  # it must not keep alive a process that stopped in time
    timer.start()
