"""A/V sync: one feedback loop keeps the voice played through the appliance (the passthrough) and
the picture together, so what visitors hear lands with the mouth they see.

Two things move, each following the other's measurement, never its own:

- the voice's delay (`DelayFollower`) follows the picture's *natural* delay — what the picture's
  latency would be without waiting: the mouth model's and the tracker's lag, then rendering and
  display — never below the line's floor (the least delay that kept the voice in hand lately,
  measured by the line itself); the line moves it only in silence;
- the picture (`PictureHold`) waits for a voice that plays later than that (its device buffer, a
  starved voice thread): a frame is chosen only once it is old enough that, rendered and shown,
  it lands with its sound.

Steering the voice by the held picture would make the two chase each other upwards. `AVSync`
wires both to one line and reads the resulting A/V offset.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from firmware_app.runners.metrics import SyncReading

if TYPE_CHECKING:
    from firmware_app.audio.passthrough import VoicePassthrough

MAX_HOLD_S = 0.3  # the most the picture waits for a late voice (the tracker keeps 16 frames: 0.5 s at 30 fps)
SYNC_WINDOW_S = 0.5  # the A/V offset is measured over this much of the latest picture
FOLLOW_STEP_S = 0.004  # the delay moves toward the measured latency by at most this much at a time…
FOLLOW_SKIP_S = 2.0  # …or, while it is far off, up to this much silence is skipped or stretched at once
FOLLOW_FAR_S = 0.03  # …which is when it is further off than this
FOLLOW_EVERY_S = 0.5  # …this often
FOLLOW_DEADBAND_S = 0.003


class DelayFollower:
    """Asks the line's delay to move toward the picture's natural latency (+ trim), but never below
    the floor that keeps the voice safe; the line makes the move at its next quiet moment. Each
    frame asks; the work is done every FOLLOW_EVERY_S."""

    def __init__(self, line: VoicePassthrough) -> None:
        self.line = line
        self._last_follow = 0.0

    def follow(self, video_latency_s: float, now: float) -> None:
        if now - self._last_follow < FOLLOW_EVERY_S:
            return
        self._last_follow = now
        line = self.line
        line.refresh()  # its stalls logged, its floor brought up to date
        if not line.follow or video_latency_s <= 0 or not line.settled:
            return  # (the last move is not measured yet: asking again would overshoot)
        error = max(video_latency_s + line.trim_s, line.floor_s) - line.play_delay_s
        if abs(error) < FOLLOW_DEADBAND_S:
            return
        # far off (start-up, a stall): as much as the next silence allows at once; nobody hears
        # silence cut short or stretched. Close: a few ms at a time
        limit = FOLLOW_SKIP_S if abs(error) > FOLLOW_FAR_S else FOLLOW_STEP_S
        line.ask_move(float(np.clip(error, -limit, limit)))


class PictureHold:
    """How long frames wait for a voice that plays later than the picture would show them.

    The wait is set each frame from the voice's measured play delay and the measured render and
    display time, neither of which the wait itself moves: a wait steered by the picture's own
    latency sees its effect a median window late and swings between nothing and MAX_HOLD_S. A
    slow correction from the measured A/V offset takes what the estimate misses."""

    SMOOTH = 0.1  # of the way to the wanted wait, per look: a few frames, so no jump is seen
    BIAS_GAIN = 0.002  # of the remaining A/V offset, per look (~15 s): what the estimate misses
    RECENT = 90  # frames whose medians are the picture's recent delays (3 s at 30 fps)

    def __init__(self, line: VoicePassthrough, fps: float) -> None:
        self.line, self.fps = line, fps
        self.hold_s = 0.0
        self.bias_s = 0.0
        self._lag_s = 0.0  # at the last look: now minus the newest instant an unheld frame could show
        self._lags: deque[float] = deque(maxlen=self.RECENT)
        self._finishes: deque[float] = deque(maxlen=self.RECENT)  # from a frame's choice to its display
        self._shown_at: deque[float] = deque(maxlen=self.RECENT)

    def shown_until(self, known_until: float, newest_captured: float | None, av_offset_ms: float, now: float) -> float:
        """Frames captured up to this wall time may be shown: the mouth model has covered them up
        to `known_until` and, with the voice late, the picture has waited for it."""
        line = self.line
        if not line.follow:
            return known_until
        self._lag_s = max(0.0, now - min(known_until, newest_captured if newest_captured is not None else known_until))
        if self._finishes:
            miss_ms = av_offset_ms - 1000 * line.trim_s  # the offset asked for is the trim
            if abs(miss_ms) < 80:  # steady running only: a start-up or a stall is not a bias
                self.bias_s = float(np.clip(self.bias_s + self.BIAS_GAIN * miss_ms / 1000, -0.05, 0.05))
            latency_s = line.play_delay_s - line.trim_s - self.half_frame_s() + self.bias_s  # what lands with the sound
            wanted = float(np.clip(latency_s - float(np.median(self._finishes)), 0.0, MAX_HOLD_S))
            self.hold_s += self.SMOOTH * (wanted - self.hold_s)
        if self.hold_s <= 0.001:
            return known_until
        return min(known_until, now - self.hold_s)

    def shown(self, chosen_at: float, shown_at: float) -> None:
        self._lags.append(self._lag_s)
        self._finishes.append(shown_at - chosen_at)
        self._shown_at.append(shown_at)

    def half_frame_s(self) -> float:
        """Half the time a frame stays on screen: a sound between two frames shows in the next
        one, this much later on average. Measured over the recent frames, not taken from the
        configured rate: on a machine too busy for it, frames stay up longer (at 8 fps, 60 ms
        where 30 fps would give 17) and the voice must be that much later to land with them."""
        if len(self._shown_at) < 2:
            return 0.5 / self.fps
        interval = (self._shown_at[-1] - self._shown_at[0]) / (len(self._shown_at) - 1)
        return 0.5 * max(interval, 1.0 / self.fps)

    def natural_delay_s(self) -> float:
        """The picture's delay had it not waited, as sync counts it (a sound between two frames
        shows in the next one: half a frame later on average)."""
        if not self._finishes:
            return 0.0
        return float(np.median(self._lags) + np.median(self._finishes)) + self.half_frame_s()


class AVSync:
    """The live loop's A/V sync: before each frame is chosen, how recent a frame may be shown
    (`shown_until`); after it is shown, the voice's delay follows and the offset is read
    (`frame_shown`). Without a passthrough nothing waits and there is no offset to read."""

    def __init__(self, line: VoicePassthrough | None, fps: float, reading: SyncReading) -> None:
        self.line, self.fps, self.reading = line, fps, reading
        self.hold = PictureHold(line, fps) if line is not None else None
        self.follower = DelayFollower(line) if line is not None else None

    def shown_until(self, known_until: float | None, newest_captured: float | None, now: float) -> float | None:
        """Frames captured up to this wall time may be shown (None: no voice to wait for, any may)."""
        if self.hold is None or known_until is None:
            return known_until
        return self.hold.shown_until(known_until, newest_captured, self.reading.av_offset_ms, now)

    def frame_shown(self, chosen_at: float, shown_at: float, recent_latencies_ms: list[float]) -> None:
        """A frame chosen at `chosen_at` reached the screen at `shown_at`; `recent_latencies_ms`
        are the latest frames' capture → display latencies, this one last."""
        if self.hold is None:
            return
        self.hold.shown(chosen_at, shown_at)
        self.follower.follow(self.hold.natural_delay_s(), shown_at)
        # over the last half second: long enough to smooth the frames' jitter, short enough that a
        # move of the voice's delay, which the picture's wait follows within a few frames, is not
        # reported as an offset for seconds
        recent = recent_latencies_ms[-round(SYNC_WINDOW_S * self.fps) :]
        picture_delay_s = float(np.median(recent)) / 1000 + self.hold.half_frame_s()  # as natural_delay_s counts it
        play_delay_s = self.line.play_delay_s
        self.reading.av_offset_ms = (play_delay_s - picture_delay_s) * 1000
        self.reading.passthrough_delay_ms = play_delay_s * 1000
