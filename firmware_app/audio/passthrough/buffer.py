"""The sound device's buffer, sized to what this machine needs now: as small as holds, larger only
while the machine is too busy for it. Every millisecond of it is a millisecond the voice (and the
picture, which waits to land with it) is late, so a fixed large buffer paid on every quiet machine
for the worst busy one (a fixed 100 ms put mic → mouth at ~190 ms where ~80 ms was possible).

The player process (`player.py`) asks `DeviceBuffer` after every callback and, a few times a
second, whether to reopen the stream with another size; it does so only in silence (`ring.quiet_for`).
"""

from __future__ import annotations

from collections import deque

START_S = 0.015  # asked first: what a quiet machine holds (PulseAudio grants it; 'low' is ~9 ms)
MOST_S = 0.12  # the largest step: above the 80-100 ms that held every busy machine seen so far
STEP = 2.0  # each raise doubles the buffer, each lowering halves it
# a callback later than the whole buffer after the last one found it empty, reported or not (through
# a sound server PortAudio does not always see the underflow); just under it is normal on a busy machine
LATE_FRACTION = 1.0
LATE_RAISE = 2  # that many late callbacks within LATE_WINDOW_S raise the buffer (a reported underflow does at once)
LATE_WINDOW_S = 30.0
LOWER_AFTER_S = 180.0  # quiet minutes (no late callback, never dry) before a step down
SETTLE_S = 1.0  # after a (re)open the first callbacks are the stream's start-up, not judged

RAN_DRY, LATE, QUIET = 1, 2, 3  # why the size changed (the player publishes it, the line logs it)
REASONS = {RAN_DRY: "the device ran dry", LATE: "callbacks came late", QUIET: f"{LOWER_AFTER_S / 60:.0f} quiet minutes"}


class DeviceBuffer:
    """What the device's callbacks say about the buffer now (`callback`, from PortAudio's thread)
    and the size to ask for next (`wanted`, from the player's main thread)."""

    def __init__(self, start_s: float = START_S, most_s: float = MOST_S) -> None:
        self.start_s, self.most_s = start_s, max(start_s, most_s)
        self.asked_s = start_s
        self.granted_s = start_s
        self._late: deque[float] = deque()
        self._ran_dry = False
        self._last_callback: float | None = None
        self._judged_from = 0.0
        self._calm_since = 0.0

    def opened(self, asked_s: float, granted_s: float, now: float) -> None:
        """A stream of this size is now playing: judge it afresh."""
        self.asked_s, self.granted_s = asked_s, granted_s
        self._late.clear()
        self._ran_dry = False
        self._last_callback = None
        self._judged_from = now + SETTLE_S
        self._calm_since = now

    def callback(self, now: float, underflow: bool) -> None:
        if now >= self._judged_from:
            if underflow:
                self._ran_dry = True
            elif self._last_callback is not None and now - self._last_callback > LATE_FRACTION * self.granted_s:
                self._late.append(now)
            if underflow or self._late and self._late[-1] == now:
                self._calm_since = now
        self._last_callback = now

    def wanted(self, now: float) -> tuple[float, int] | None:
        """(size to ask for, why) when this one should change, else None."""
        while self._late and self._late[0] < now - LATE_WINDOW_S:
            self._late.popleft()
        if self.asked_s < self.most_s and (self._ran_dry or len(self._late) >= LATE_RAISE):
            return min(self.most_s, self.asked_s * STEP), RAN_DRY if self._ran_dry else LATE
        if self.asked_s > self.start_s and now - self._calm_since >= LOWER_AFTER_S:
            return max(self.start_s, self.asked_s / STEP), QUIET
        return None
