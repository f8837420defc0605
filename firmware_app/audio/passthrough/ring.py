"""The voice's delay line as both of its processes see it: one block of shared memory laid out
as a control block, the device's recent callbacks, the stall log and the ring of samples, and the
device's side of the line (`play`), which the player process runs for every buffer the sound
device asks for. The voice thread's side is `line.VoicePassthrough`; the player is `player.py`.

Lock-free: every slot of the control block has one writer (noted below).
"""

from __future__ import annotations

import time

import numpy as np

from firmware_app.frames import SAMPLE_RATE

RING_SAMPLES = 8 * SAMPLE_RATE  # voice held for play-out: bounded, allocated once
QUIET_RMS = 0.003  # about -50 dBFS: the delay moves only where the voice is this quiet, so no one hears it
QUIET_MARGIN = round(0.03 * SAMPLE_RATE)  # …for this long around the samples a move skips or repeats
WINDOW = SAMPLE_RATE // 100  # silence ahead is judged in 10 ms windows
TIMINGS = 256  # the last callbacks, (wall time, first sample, samples in hand, samples asked): measures and floor
STALL_LOG = 32  # the last stalls, (input sample where the voice resumed, samples waited), for the log

# Slots of the shared control block, each written by one side only (noted), so no lock is needed.
(
    ANCHORED,
    NEXT,
    RECEIVED,
    WANTED,
    JUMP_FROM,
    JUMP_TO,
    JUMPING,
    UNDERFLOWS,
    WAITING,
    STALLS,
    WAITED,
    QUIET_RUN,
    DELAY,
    TIMED,
    OVERRUN,
    MOVED_AT,
    BUFFER_US,
    BUFFER_CHANGES,
    BUFFER_WHY,
) = range(19)
# writers: voice thread: ANCHORED, RECEIVED, WANTED (the player clears it), JUMP_*, JUMPING (the
# player clears it), NEXT (only before ANCHORED); the player: everything else, BUFFER_* too (the
# latency its device reports, in µs; how often it changed; why it last did: `buffer.REASONS`).
CTL_SLOTS = 19


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


def quiet_for(line: SharedLine, device_samples: int) -> bool:
    """All the device still holds is silence, and the voice before it was silent too: the stream
    can be closed and reopened here (a few ms with nothing played) without anyone hearing it. The
    voice still to come waits in the ring and plays whole, that much later (measured)."""
    return int(line.ctl[QUIET_RUN]) >= device_samples + QUIET_MARGIN


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
    after them: in whole windows, or all of a step shorter than one (the follower's few-ms steps:
    rounded down to windows they never happened, and a delay that rose never came back down)."""
    c = line.ctl
    held = min(most + QUIET_MARGIN, int(c[RECEIVED] - c[NEXT]))
    if held < min(most, WINDOW) + QUIET_MARGIN:
        return 0
    ahead = np.zeros(-(-held // WINDOW) * WINDOW, np.float32)  # the last window padded with silence
    line.take(ahead[:held], int(c[NEXT]))
    loud = np.sqrt(np.mean(ahead.reshape(-1, WINDOW) ** 2, axis=1)) >= QUIET_RMS
    quiet = min(held, (int(np.argmax(loud)) if loud.any() else len(loud)) * WINDOW)
    skip = max(0, min(most, quiet - QUIET_MARGIN))
    return skip if most < WINDOW else skip // WINDOW * WINDOW
