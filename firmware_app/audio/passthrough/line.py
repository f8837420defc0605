"""The voice thread's side of the passthrough (see the package's docstring): it copies each block
into the shared ring, measures the delay the voice really plays with and the floor that keeps it
safe, and starts and stops the player process that feeds the sound device.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import select
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

from firmware_app.audio.passthrough.buffer import QUIET, REASONS, START_S
from firmware_app.audio.passthrough.ring import (
    ANCHORED,
    BUFFER_CHANGES,
    BUFFER_US,
    BUFFER_WHY,
    DELAY,
    JUMP_FROM,
    JUMP_TO,
    JUMPING,
    MOVED_AT,
    NEXT,
    OVERRUN,
    RECEIVED,
    RING_SAMPLES,
    STALL_LOG,
    STALLS,
    TIMED,
    TIMINGS,
    UNDERFLOWS,
    WAITED,
    WANTED,
    SharedLine,
    play,
)
from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.resource import Resource

log = logging.getLogger(__name__)


def passthrough_delay_s(lookahead_s: float, fps: float, trim_ms: float) -> float:
    """The starting delay: the model's look-ahead plus one frame of render and display. Live, the
    delay then follows the pipeline's measured latency (`runners.avsync`); `audio.passthrough_trim_ms`
    corrects what no measurement here can see (the display's own lag, the speaker's distance)."""
    return max(0.0, lookahead_s + 1.0 / fps + trim_ms / 1000.0)


SAFETY_S = 0.01  # voice kept in hand beyond the latest one seen late: the floor's margin
FLOOR_WINDOW_S = 30.0  # how long a stall keeps the floor raised
# above this the picture (held at most 300 ms, see runners/avsync.py) could not follow: sound and
# picture would part
FLOOR_MOST_S = 0.3
SETTLE_S = 5.0  # lateness in the first seconds of a voice is start-up work (model warm-up), not a stall
MEASURED = 64  # the latest callbacks (since the last move) whose delay's median is the measured delay
SETTLED_CALLBACKS = 8  # callbacks after a move before the delay is judged again
PLAYER_START_S = 30.0  # the player process's start (imports, device open) on a busy machine
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # where this firmware_app is imported from


class VoicePassthrough(Resource):
    """A delay line on the voice's own sample clock: output sample n plays input sample
    n - delay. The voice thread writes; the player process plays (see the module docstring)."""

    def __init__(self, device: str, delay_s: float, follow: bool = False, trim_s: float = 0.0) -> None:
        self.device = "" if device in ("", "default") else device
        self.follow = follow  # live: move the delay toward the measured picture latency
        self.trim_s = trim_s
        self.line = SharedLine()
        self.line.ctl[DELAY] = round(delay_s * SAMPLE_RATE)
        self.late_samples = 0  # voice that arrived after its play-out time and was never played
        self.floor_s = 0.0  # see _update_floor
        self.callback_priority = "never"
        self._stalls_logged = 0
        self._buffer_changes_logged = 0
        self._origin: float | None = None  # wall time of input sample 0 (earliest arrival seen)
        self._settled_at = 0.0
        self._needed: deque[tuple[float, float]] = deque()  # (wall time, play delay that callback needed)
        self._timed_read = 0
        self._memory: mmap.mmap | None = None
        self._player: subprocess.Popen | None = None

    @property
    def device_latency_s(self) -> float:
        """What the sound device holds now, as it reports it (the player resizes it: `buffer.py`)."""
        return float(self.line.ctl[BUFFER_US]) / 1e6

    @property
    def delay_s(self) -> float:
        """The line's own delay (the device's latency comes on top); moved by `ask_move` (`runners.avsync` asks)."""
        return float(self.line.ctl[DELAY]) / SAMPLE_RATE

    # --- the player process ----------------------------------------------------------------------

    def open(self) -> None:
        fd = _anonymous_memory(SharedLine.NBYTES)
        try:
            self._memory = mmap.mmap(fd, SharedLine.NBYTES)
            before, self.line = self.line, SharedLine(self._memory)
            self.line.ctl[:] = before.ctl
            self._player = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firmware_app.audio.passthrough.player",
                    str(fd),
                    self.device,
                    str(START_S),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                pass_fds=(fd,),
                # `python -m` puts its working directory first on the path: started from another
                # checkout it would import that one's player, whose other layout of the shared block
                # read the callbacks' times as the device's latency (an A/V offset of ~10^15 ms)
                cwd=_PACKAGE_ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
                },
            )
        finally:
            os.close(fd)
        reply = _reply(self._player, PLAYER_START_S)
        if not reply.startswith("ok "):
            self._stop_player()
            detail = (
                json.loads(reply[6:])
                if reply.startswith("error ")
                else {"error": reply or "the player process did not start", "outputs": []}
            )
            raise DeviceError(
                f"cannot open audio output {self.device or 'default'!r} for passthrough: {detail['error']}",
                "set audio.passthrough_device to one of: "
                + (", ".join(repr(n) for n in detail["outputs"]) or "none found")
                + ", or audio.passthrough: false",
            )
        log.info(
            "voice passthrough to %s, delayed %.0f ms (+ %.0f ms in the device)",
            self.device or "default",
            self.delay_s * 1000,
            self.device_latency_s * 1000,
        )

    def _stop_player(self) -> None:
        player, self._player = self._player, None
        if player is None:
            return
        try:
            player.stdin.write("close\n")
            player.stdin.close()
        except (BrokenPipeError, OSError):  # it has gone already
            pass
        done = _reply(player, 1.0)
        if done.startswith("done "):
            self.callback_priority = done[5:]
        try:
            player.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            player.kill()
            player.wait()

    # --- the voice thread's side: copy into the ring, nothing else -----------------------------

    def write(self, block: AudioBlock) -> None:
        c = self.line.ctl
        first = round(block.t * SAMPLE_RATE)
        samples = block.samples
        end = first + len(samples)
        self._note_arrival(time.monotonic(), end)
        if not c[ANCHORED]:  # the voice starts now: play it `delay` from now
            c[NEXT] = first - c[DELAY]
            c[RECEIVED] = first
            c[ANCHORED] = 1
        received = int(c[RECEIVED])
        if first > received:
            # a gap in the input (a reopened source): silence, not voice. A line that has
            # played everything it had does not wait through it (nor count it as a stall)
            self.line.put(received, np.zeros(min(first - received, RING_SAMPLES), np.float32))
            c[JUMP_FROM], c[JUMP_TO] = received, first - c[DELAY]
            c[JUMPING] = 1
        late = max(0, min(end, int(c[NEXT])) - first)
        self.late_samples += late
        self.line.put(first + late, samples[late:])
        c[RECEIVED] = max(received, end)  # after the samples: the player reads only what is complete

    def _note_arrival(self, arrived: float, end: int) -> None:
        """The voice's clock: the block that arrived soonest after it ended says when sample 0 was
        captured (the sample clock does not drift; only its start is unknown)."""
        origin = arrived - end / SAMPLE_RATE
        if self._origin is None:
            self._settled_at = arrived + SETTLE_S
        self._origin = origin if self._origin is None else min(self._origin, origin)

    def _update_floor(self) -> None:
        """Each callback since the last look needed a play delay of: the device's buffer, plus what
        it asked for, plus how late the newest voice in hand then was. The floor is the most any
        needed in the last FLOOR_WINDOW_S (after start-up), plus SAFETY_S."""
        timed = int(self.line.ctl[TIMED])
        rows = [self.line.timing[n % TIMINGS] for n in range(max(self._timed_read, timed - TIMINGS), timed)]
        self._timed_read = timed
        if self._origin is not None:
            for wall, _start, received, frames in rows:
                if wall >= self._settled_at:
                    late = wall - (self._origin + received / SAMPLE_RATE)
                    self._needed.append((wall, self.device_latency_s + frames / SAMPLE_RATE + late))
        now = time.monotonic()
        while self._needed and self._needed[0][0] < now - FLOOR_WINDOW_S:
            self._needed.popleft()
        self.floor_s = min(FLOOR_MOST_S, max((needed for _, needed in self._needed), default=0.0) + SAFETY_S)

    def _fill(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        """The device's side, in this process: what the player process runs (tests drive it)."""
        play(self.line, outdata[:, 0], bool(status and getattr(status, "output_underflow", False)))

    # --- the delay, as measured and as wanted ----------------------------------------------------

    def refresh(self) -> None:
        """Bring the measurements up to date: log the stalls since the last look and recompute the
        floor (`avsync` calls this before it asks the delay to move)."""
        self._log_stalls()
        self._log_buffer_changes()
        self._update_floor()

    @property
    def settled(self) -> bool:
        """The last move has been measured: the device has asked often enough since."""
        return self.line.ctl[TIMED] - self.line.ctl[MOVED_AT] >= SETTLED_CALLBACKS

    def ask_move(self, step_s: float) -> None:
        """Move the delay by `step_s` (later: +) at the next quiet moment, as much of it as the
        silence there allows."""
        self.line.ctl[WANTED] = round(step_s * SAMPLE_RATE)

    def _log_stalls(self) -> None:
        """Each stall, where it happened on the voice's clock (repeats are rate-limited by the log)."""
        stalls = int(self.line.ctl[STALLS])
        for n in range(max(self._stalls_logged, stalls - STALL_LOG), stalls):
            resumed_at, waited = self.line.stall_log[n % STALL_LOG]
            log.warning(
                "passthrough: waited %.0f ms for late voice at %.2f s of the voice (the voice thread was "
                "starved); it plays that much later",
                1000 * waited / SAMPLE_RATE,
                resumed_at / SAMPLE_RATE,
            )
        self._stalls_logged = stalls

    def _log_buffer_changes(self) -> None:
        """The player resized the device's buffer (in silence): say to what and why."""
        changes = int(self.line.ctl[BUFFER_CHANGES])
        if changes != self._buffer_changes_logged:
            self._buffer_changes_logged = changes
            why = int(self.line.ctl[BUFFER_WHY])
            log.log(
                logging.INFO if why == QUIET else logging.WARNING,
                "passthrough: the sound device's buffer is now %.0f ms (%s)",
                self.device_latency_s * 1000,
                REASONS.get(why, "?"),
            )

    def recent_waits(self) -> str:
        """The last STALL_LOG waits as 'T s N ms' (T on the voice's clock), oldest first."""
        stalls = int(self.line.ctl[STALLS])
        waits = [self.line.stall_log[n % STALL_LOG] for n in range(max(0, stalls - STALL_LOG), stalls)]
        return ", ".join(f"{at / SAMPLE_RATE:.2f} s {1000 * waited / SAMPLE_RATE:.0f} ms" for at, waited in waits)

    def recent_underflows(self) -> str:
        """Where on the voice's clock the device last ran dry, oldest first."""
        count = int(self.line.ctl[UNDERFLOWS])
        return ", ".join(
            f"{self.line.underflow_log[n % STALL_LOG] / SAMPLE_RATE:.2f} s"
            for n in range(max(0, count - STALL_LOG), count)
        )

    def set_trim(self, trim_s: float) -> None:
        """The operator's trim, changed live (the console's slider): the delay moves by the
        difference at quiet moments, toward the measured latency (auto) or by the whole step (fixed)."""
        step, self.trim_s = trim_s - self.trim_s, trim_s
        if not self.follow:
            self.line.ctl[WANTED] += round(step * SAMPLE_RATE)

    @property
    def play_delay_s(self) -> float:
        """From a sample's capture to its sound leaving the device: measured on the wall clock
        (so a stall or a device that ran dry shows here), else the nominal line + device latency."""
        count = int(min(self.line.ctl[TIMED] - self.line.ctl[MOVED_AT], MEASURED))
        if self._origin is None or count <= 0:
            return self.delay_s + self.device_latency_s
        latest = (int(self.line.ctl[TIMED]) - 1 - np.arange(count)) % TIMINGS
        wall, sample = self.line.timing[latest, 0], self.line.timing[latest, 1]
        return float(np.median(wall + self.device_latency_s - (self._origin + sample / SAMPLE_RATE)))

    def report(self) -> dict[str, float]:
        """What the line did: voice skipped and waited for (ms), stalls, device underflows."""
        c = self.line.ctl
        return {
            "skipped_ms": 1000 * (self.late_samples + int(c[OVERRUN])) / SAMPLE_RATE,
            "waited_ms": 1000 * int(c[WAITED]) / SAMPLE_RATE,
            "stalls": int(c[STALLS]),
            "underflows": int(c[UNDERFLOWS]),
        }

    def _pending(self) -> bool:
        c = self.line.ctl
        return bool(c[ANCHORED]) and c[NEXT] < c[RECEIVED]

    def close(self, timeout_s: float = 2.0) -> None:
        """Play out what the delay line still holds and then the device's own buffer (the end of
        a voice is not cut off), then stop. The wait for the device is explicit: through a sound
        server PortAudio's stop returns while the server still holds the last of the voice."""
        if self._player is None:
            return
        deadline = time.monotonic() + timeout_s - 0.5  # the player's own stop is left its half second
        while self._pending() and self._player.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(max(0.0, min(self.device_latency_s + 0.05, deadline - time.monotonic())))
        self._stop_player()
        self._log_stalls()
        done = self.report()
        log.log(
            logging.WARNING if done["skipped_ms"] or done["stalls"] or done["underflows"] else logging.INFO,
            "passthrough: %.0f ms of voice skipped; waited %.0f ms for late voice (%d times); the device ran dry "
            "%d times; "
            "its callback ran %s; the last waits: %s; ran dry at: %s; its buffer ended at %.0f ms after %d changes",
            done["skipped_ms"],
            done["waited_ms"],
            done["stalls"],
            done["underflows"],
            self.callback_priority,
            self.recent_waits() or "none",
            self.recent_underflows() or "never",
            self.device_latency_s * 1000,
            int(self.line.ctl[BUFFER_CHANGES]),
        )
        # the shared memory is not closed here: the voice thread may still be writing into it (it
        # stops after the line); it is freed with the last reference


def _reply(player: subprocess.Popen, timeout_s: float) -> str:
    """The player's next line on stdout ('' when it says nothing in time)."""
    ready, _, _ = select.select([player.stdout], [], [], timeout_s)
    return player.stdout.readline().strip() if ready else ""


def _anonymous_memory(size: int) -> int:
    """A file descriptor of `size` bytes of memory that no file system shows (the voice is never
    written to disk); a deleted temporary file where memfd does not exist."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("ventriloquist-voice", 0)
    else:  # pragma: no cover - not Linux
        handle = tempfile.TemporaryFile()
        fd = os.dup(handle.fileno())
        handle.close()
    os.ftruncate(fd, size)
    return fd
