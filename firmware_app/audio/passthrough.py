"""Audio passthrough: the appliance plays the voice through its own speaker, delayed so that what
visitors hear lands together with the mouth they see (people notice sound that leads the picture
most; ATSC IS-191 allows 15 ms lead).

The voice must never glitch when the CPU is busy, so the line is built to bend, not break:

- the sound device is fed by its own small process (`player_main`): its callback never waits for
  this process's GIL, which a tracker or renderer thread may hold while the busy cores have
  preempted it (that wait is what made the device run dry). It gets a real-time or raised
  priority where the system allows, and does nothing but copy from a ring;
- the ring is one block of shared memory (memfd: never on a disk) that the voice thread writes and
  the player reads, lock-free: every slot has one writer;
- the device buffer is larger than PortAudio's "low" default (DEVICE_BUFFER_S) and the latency
  the device reports is part of the measured delay;
- when the voice has not arrived by its play-out time (the voice thread was starved), the line
  waits for it instead of skipping it: the voice plays later and nothing is lost. The delay line
  says so (`play_delay_s` is measured against the wall clock), it keeps a floor that covers the
  lateness seen lately (`floor_s`), and the picture is held to that floor (`live.py`), so sound
  and picture stay together;
- the delay moves only inside silence, so nobody hears it move (a long silence may be skipped at
  once: a delay far above its target comes down in the next pause).
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

from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE, AudioBlock
from firmware_app.platform.priority import make_this_thread_realtime, realtime_threads_spawned
from firmware_app.resource import Resource

log = logging.getLogger(__name__)


def passthrough_delay_s(lookahead_s: float, fps: float, trim_ms: float) -> float:
    """The starting delay: the model's look-ahead plus one frame of render and display. Live, the
    delay then follows the pipeline's measured latency (`follow_latency`); `audio.passthrough_trim_ms`
    corrects what no measurement here can see (the display's own lag, the speaker's distance)."""
    return max(0.0, lookahead_s + 1.0 / fps + trim_ms / 1000.0)


RING_SAMPLES = 8 * SAMPLE_RATE  # voice held for play-out: bounded, allocated once
DEVICE_BUFFER_S = 0.1  # asked of PortAudio: a callback may come this late before the device runs dry
FOLLOW_STEP_S = 0.004  # the delay moves toward the measured latency by at most this much at a time…
FOLLOW_SKIP_S = 2.0  # …or, while it is far off, up to this much silence is skipped or stretched at once
FOLLOW_EVERY_S = 0.5  # …this often
FOLLOW_DEADBAND_S = 0.003
QUIET_RMS = 0.003  # about -50 dBFS: the delay moves only where the voice is this quiet, so no one hears it
QUIET_MARGIN = round(0.03 * SAMPLE_RATE)  # …for this long around the samples a move skips or repeats
WINDOW = SAMPLE_RATE // 100  # silence ahead is judged in 10 ms windows
SAFETY_S = 0.03  # voice kept in hand beyond the latest one seen late: the floor's margin
FLOOR_WINDOW_S = 30.0  # how long a stall keeps the floor raised
FLOOR_MOST_S = 0.3  # above this the picture (held at most 300 ms, see live.py) could not follow: sound and picture would part
SETTLE_S = 5.0  # lateness in the first seconds of a voice is start-up work (model warm-up), not a stall
TIMINGS = 256  # the last callbacks, (wall time, first sample, samples in hand, samples asked): measures and floor
MEASURED = 64  # the latest callbacks (since the last move) whose delay's median is the measured delay
SETTLED_CALLBACKS = 8  # callbacks after a move before the delay is judged again
STALL_LOG = 32  # the last stalls, (input sample where the voice resumed, samples waited), for the log
PLAYER_START_S = 30.0  # the player process's start (imports, device open) on a busy machine

# Slots of the shared control block, each written by one side only (noted), so no lock is needed.
(ANCHORED, NEXT, RECEIVED, WANTED, JUMP_FROM, JUMP_TO, JUMPING, UNDERFLOWS, WAITING, STALLS,
 WAITED, QUIET_RUN, DELAY, TIMED, OVERRUN, MOVED_AT) = range(16)
# writers: voice thread: ANCHORED, RECEIVED, WANTED (the player clears it), JUMP_*, JUMPING (the
# player clears it), NEXT (only before ANCHORED); the player: everything else.
CTL_SLOTS = 16


class SharedLine:
    """The state both sides of the delay line see, laid out in one buffer (the shared memory, or
    plain bytes when the line is driven in-process, as the tests do)."""

    NBYTES = CTL_SLOTS * 8 + TIMINGS * 32 + STALL_LOG * 24 + RING_SAMPLES * 4

    def __init__(self, buffer=None) -> None:
        buffer = bytearray(self.NBYTES) if buffer is None else buffer
        at = 0
        self.ctl = np.frombuffer(buffer, np.int64, CTL_SLOTS, at)
        at += CTL_SLOTS * 8
        self.timing = np.frombuffer(buffer, np.float64, TIMINGS * 4, at).reshape(TIMINGS, 4)
        at += TIMINGS * 32
        self.stall_log = np.frombuffer(buffer, np.int64, STALL_LOG * 2, at).reshape(STALL_LOG, 2)
        at += STALL_LOG * 16
        self.underflow_log = np.frombuffer(buffer, np.int64, STALL_LOG, at)  # input sample playing when it happened
        at += STALL_LOG * 8
        self.ring = np.frombuffer(buffer, np.float32, RING_SAMPLES, at)

    def put(self, first: int, samples: np.ndarray) -> None:
        samples = samples[-RING_SAMPLES:]
        at = first % RING_SAMPLES
        split = min(len(samples), RING_SAMPLES - at)
        self.ring[at : at + split] = samples[:split]
        self.ring[: len(samples) - split] = samples[split:]

    def take(self, out: np.ndarray, first: int) -> None:
        at = first % RING_SAMPLES
        split = min(len(out), RING_SAMPLES - at)
        out[:split] = self.ring[at : at + split]
        out[split:] = self.ring[: len(out) - split]


def play(line: SharedLine, out: np.ndarray, underflow: bool) -> None:
    """The sound device's side, called for every buffer it wants: copy the next samples from the
    ring. Voice that has not come yet is waited for (silence now, the voice whole, later)."""
    c = line.ctl
    out[:] = 0.0
    if not c[ANCHORED]:
        return
    start, received = int(c[NEXT]), int(c[RECEIVED])
    if underflow:  # the wall-clock measurement below sees the delay it added
        line.underflow_log[c[UNDERFLOWS] % STALL_LOG] = start
        c[UNDERFLOWS] += 1
    if c[JUMPING]:  # a gap in the input: an idle line jumps over it rather than play it
        if start >= c[JUMP_FROM]:
            start, c[WAITING] = max(start, int(c[JUMP_TO])), 0
        c[JUMPING] = 0
    if received - start > RING_SAMPLES:  # nobody pulled for a long time: the newest voice is kept
        c[OVERRUN] += received - RING_SAMPLES - start
        start = received - RING_SAMPLES
    frames = len(out)
    ready = min(frames, max(0, received - start))
    if ready < frames:  # the voice is late (or over)
        c[WAITING] += frames - ready
    elif c[WAITING]:  # the voice waited for has come: that wait was a stall
        line.stall_log[c[STALLS] % STALL_LOG] = (start, c[WAITING])
        c[STALLS] += 1
        c[WAITED] += c[WAITING]
        c[WAITING] = 0
    if ready:
        line.take(out[:ready], start)
    line.timing[c[TIMED] % TIMINGS] = (time.monotonic(), start, received, frames)
    c[TIMED] += 1
    c[NEXT] = start + ready
    c[QUIET_RUN] = c[QUIET_RUN] + frames if np.sqrt(np.mean(out**2)) < QUIET_RMS else 0
    _move_if_unheard(line)


def _move_if_unheard(line: SharedLine) -> None:
    """Moving the delay repeats (step > 0) the samples just played or skips (step < 0) the next
    ones: only where all of that, and a margin, is silence. One quiet device buffer is not
    enough: inside a word (a stop consonant) a few ms can be that quiet."""
    c = line.ctl
    step = int(c[WANTED])
    if step > 0:  # as much as the silence just played allows
        step = min(step, int(c[QUIET_RUN]) - QUIET_MARGIN) // WINDOW * WINDOW if step > WINDOW else step
        if step <= 0 or c[QUIET_RUN] < step + QUIET_MARGIN:
            return
    elif step < 0:  # as much of the silence ahead as allows, after silence just played
        step = -_silence_ahead(line, -step) if c[QUIET_RUN] >= QUIET_MARGIN else 0
    if step == 0:
        return
    c[NEXT] -= step  # later play-out = read further back
    c[DELAY] = max(0, c[DELAY] + step)
    c[WANTED] = 0
    c[MOVED_AT] = c[TIMED]  # the callbacks before this one measured the delay before the move


def _silence_ahead(line: SharedLine, most: int) -> int:
    """How many of the next samples (up to `most`) can be skipped with QUIET_MARGIN of silence
    after them, in whole windows."""
    c = line.ctl
    held = min(most + QUIET_MARGIN, int(c[RECEIVED] - c[NEXT])) // WINDOW * WINDOW
    if held < QUIET_MARGIN + WINDOW:
        return 0
    ahead = np.empty(held, np.float32)
    line.take(ahead, int(c[NEXT]))
    loud = np.sqrt(np.mean(ahead.reshape(-1, WINDOW) ** 2, axis=1)) >= QUIET_RMS
    quiet = (int(np.argmax(loud)) if loud.any() else len(loud)) * WINDOW
    return max(0, min(most, quiet - QUIET_MARGIN)) // WINDOW * WINDOW


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
        self.floor_s = 0.0  # see follow_latency
        self.callback_priority = "never"
        self._last_follow = 0.0
        self._stalls_logged = 0
        self._device_latency = 0.0
        self._origin: float | None = None  # wall time of input sample 0 (earliest arrival seen)
        self._settled_at = 0.0
        self._needed: deque[tuple[float, float]] = deque()  # (wall time, play delay that callback needed)
        self._timed_read = 0
        self._memory: mmap.mmap | None = None
        self._player: subprocess.Popen | None = None

    @property
    def delay_s(self) -> float:
        """The line's own delay (the device's latency comes on top); moved by follow_latency."""
        return float(self.line.ctl[DELAY]) / SAMPLE_RATE

    # --- the player process ----------------------------------------------------------------------

    def open(self) -> None:
        fd = _anonymous_memory(SharedLine.NBYTES)
        try:
            self._memory = mmap.mmap(fd, SharedLine.NBYTES)
            before, self.line = self.line, SharedLine(self._memory)
            self.line.ctl[:] = before.ctl
            self._player = subprocess.Popen(
                [sys.executable, "-c", "from firmware_app.audio.passthrough import player_main; player_main()",
                 str(fd), self.device, str(DEVICE_BUFFER_S)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, pass_fds=(fd,),
                env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH")]))},
            )
        finally:
            os.close(fd)
        reply = _reply(self._player, PLAYER_START_S)
        if not reply.startswith("ok "):
            self._stop_player()
            detail = json.loads(reply[6:]) if reply.startswith("error ") else {"error": reply or "the player process did not start", "outputs": []}
            raise DeviceError(
                f"cannot open audio output {self.device or 'default'!r} for passthrough: {detail['error']}",
                "set audio.passthrough_device to one of: "
                + (", ".join(repr(n) for n in detail["outputs"]) or "none found")
                + ", or audio.passthrough: false",
            )
        self._device_latency = float(reply.split()[1])
        log.info("voice passthrough to %s, delayed %.0f ms (+ %.0f ms in the device)", self.device or "default", self.delay_s * 1000, self._device_latency * 1000)

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
                    self._needed.append((wall, self._device_latency + frames / SAMPLE_RATE + late))
        now = time.monotonic()
        while self._needed and self._needed[0][0] < now - FLOOR_WINDOW_S:
            self._needed.popleft()
        self.floor_s = min(FLOOR_MOST_S, max((needed for _, needed in self._needed), default=0.0) + SAFETY_S)

    def _fill(self, outdata: np.ndarray, frames: int, time_info: object, status: object) -> None:
        """The device's side, in this process: what the player process runs (tests drive it)."""
        play(self.line, outdata[:, 0], bool(status and getattr(status, "output_underflow", False)))

    # --- the delay, as measured and as wanted ----------------------------------------------------

    def follow_latency(self, video_latency_s: float) -> None:
        """Ask the delay to move toward the measured picture latency (+ trim), but never below the
        floor that keeps the voice safe; the move happens at the next quiet moment.

        The floor (`_update_floor`) is the least play delay that would have had the voice in hand
        for every callback lately; the picture is held to it (`live.py`). Each frame asks; the
        work is done every FOLLOW_EVERY_S."""
        now = time.monotonic()
        if now - self._last_follow < FOLLOW_EVERY_S:
            return
        self._last_follow = now
        self._log_stalls()
        self._update_floor()
        if not self.follow or video_latency_s <= 0 or self.line.ctl[TIMED] - self.line.ctl[MOVED_AT] < SETTLED_CALLBACKS:
            return  # (the last move is not measured yet: asking again would overshoot)
        error = max(video_latency_s + self.trim_s, self.floor_s) - self.play_delay_s
        if abs(error) < FOLLOW_DEADBAND_S:
            return
        # far off (start-up, a stall): as much as the next silence allows at once; nobody hears
        # silence cut short or stretched. Close: a few ms at a time
        limit = FOLLOW_SKIP_S if abs(error) > 0.03 else FOLLOW_STEP_S
        self.line.ctl[WANTED] = round(float(np.clip(error, -limit, limit)) * SAMPLE_RATE)

    def _log_stalls(self) -> None:
        """Each stall, where it happened on the voice's clock (repeats are rate-limited by the log)."""
        stalls = int(self.line.ctl[STALLS])
        for n in range(max(self._stalls_logged, stalls - STALL_LOG), stalls):
            resumed_at, waited = self.line.stall_log[n % STALL_LOG]
            log.warning("passthrough: waited %.0f ms for late voice at %.2f s of the voice (the voice thread was starved); it plays that much later",
                        1000 * waited / SAMPLE_RATE, resumed_at / SAMPLE_RATE)
        self._stalls_logged = stalls

    def recent_waits(self) -> str:
        """The last STALL_LOG waits as 'T s N ms' (T on the voice's clock), oldest first."""
        stalls = int(self.line.ctl[STALLS])
        waits = [self.line.stall_log[n % STALL_LOG] for n in range(max(0, stalls - STALL_LOG), stalls)]
        return ", ".join(f"{at / SAMPLE_RATE:.2f} s {1000 * waited / SAMPLE_RATE:.0f} ms" for at, waited in waits)

    def recent_underflows(self) -> str:
        """Where on the voice's clock the device last ran dry, oldest first."""
        count = int(self.line.ctl[UNDERFLOWS])
        return ", ".join(f"{self.line.underflow_log[n % STALL_LOG] / SAMPLE_RATE:.2f} s" for n in range(max(0, count - STALL_LOG), count))

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
            return self.delay_s + self._device_latency
        latest = (int(self.line.ctl[TIMED]) - 1 - np.arange(count)) % TIMINGS
        wall, sample = self.line.timing[latest, 0], self.line.timing[latest, 1]
        return float(np.median(wall + self._device_latency - (self._origin + sample / SAMPLE_RATE)))

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
        time.sleep(max(0.0, min(self._device_latency + 0.05, deadline - time.monotonic())))
        self._stop_player()
        self._log_stalls()
        done = self.report()
        log.log(logging.WARNING if done["skipped_ms"] or done["stalls"] or done["underflows"] else logging.INFO,
                "passthrough: %.0f ms of voice skipped; waited %.0f ms for late voice (%d times); the device ran dry %d times; "
                "its callback ran %s; the last waits: %s; ran dry at: %s", done["skipped_ms"], done["waited_ms"], done["stalls"],
                done["underflows"], self.callback_priority, self.recent_waits() or "none", self.recent_underflows() or "never")
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


def player_main() -> None:
    """The player process: `python -c … <memory fd> <device or ''> <buffer s>`. Says `ok <latency>`
    or `error <json>` on stdout, plays until stdin says close (or closes: the appliance is gone),
    then says `done <priority its callback got>`."""
    from firmware_app.sources.mic import require_sounddevice

    fd, device, buffer_s = int(sys.argv[1]), sys.argv[2] or None, float(sys.argv[3])
    line = SharedLine(mmap.mmap(fd, SharedLine.NBYTES))
    priority: list[str] = []

    def callback(outdata: np.ndarray, frames: int, time_info: object, status) -> None:
        if not priority:
            priority.append(make_this_thread_realtime(fallback_nice=-10))
        play(line, outdata[:, 0], bool(status.output_underflow))

    try:
        sd = require_sounddevice()
        with realtime_threads_spawned():
            stream = sd.OutputStream(samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device, callback=callback, latency=buffer_s)
            stream.start()
    except DeviceError as exc:
        print("error " + json.dumps({"error": exc.cause, "outputs": []}), flush=True)
        return
    except (sd.PortAudioError, ValueError) as exc:
        outputs = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
        print("error " + json.dumps({"error": str(exc), "outputs": outputs}), flush=True)
        return
    print(f"ok {stream.latency}", flush=True)
    sys.stdin.readline()
    stream.stop()
    stream.close()
    print("done " + (priority[0] if priority else "never"), flush=True)
