"""The player process: feeds the sound device from the shared ring (`ring.play`) and nothing
else, so its callback never waits for the appliance's GIL. Its device buffer starts small and is
resized to what the machine needs (`buffer.DeviceBuffer`), in silence only.

    python -m firmware_app.audio.passthrough.player <memory fd> <device or ''> <starting buffer s>
"""

from __future__ import annotations

import json
import mmap
import os
import select
import sys
import threading
import time

import numpy as np

from firmware_app.audio.passthrough.buffer import DeviceBuffer
from firmware_app.audio.passthrough.ring import (
    BUFFER_CHANGES,
    BUFFER_US,
    BUFFER_WHY,
    MOVED_AT,
    TIMED,
    SharedLine,
    play,
    quiet_for,
)
from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE
from firmware_app.platform.priority import make_this_thread_realtime, realtime_threads_spawned

LOOK_S = 0.05  # how often the main thread looks whether the buffer should change (and for `close`)


class Player:
    """One output stream at a time, of the size `DeviceBuffer` wants."""

    def __init__(self, sd, line: SharedLine, device: str | None, start_s: float) -> None:
        self.sd, self.line, self.device = sd, line, device
        self.buffer = DeviceBuffer(start_s)
        self.priority: list[str] = []
        self._prioritised: set[int] = set()  # each new stream has a new callback thread
        self.stream = self._open(start_s)

    def _callback(self, outdata: np.ndarray, frames: int, time_info: object, status) -> None:
        thread = threading.get_ident()
        if thread not in self._prioritised:
            self._prioritised.add(thread)
            self.priority[:] = [make_this_thread_realtime(fallback_nice=-10)]
        play(self.line, outdata[:, 0], bool(status.output_underflow))
        self.buffer.callback(time.monotonic(), bool(status.output_underflow))

    def _open(self, buffer_s: float):
        with realtime_threads_spawned():
            stream = self.sd.OutputStream(
                samplerate=SAMPLE_RATE,
                channels=1,
                dtype="float32",
                device=self.device,
                callback=self._callback,
                latency=buffer_s,
            )
            stream.start()
        self.buffer.opened(buffer_s, float(stream.latency), time.monotonic())
        self.line.ctl[BUFFER_US] = round(stream.latency * 1e6)
        return stream

    def resize_if_wanted(self) -> None:
        """Reopen the stream at the size wanted, once all the device holds is silence. The few ms
        with no callback delay the voice still to come by that much: the line measures it (a move)."""
        change = self.buffer.wanted(time.monotonic())
        if change is None or not quiet_for(self.line, round(self.buffer.granted_s * SAMPLE_RATE)):
            return
        size, why = change
        before = self.buffer.asked_s
        self.stream.stop()
        self.stream.close()
        try:
            self.stream = self._open(size)
        except self.sd.PortAudioError:  # the device would not take that size: keep the one it took
            self.stream = self._open(before)
            self.buffer.most_s = self.buffer.start_s = before
        c = self.line.ctl
        c[MOVED_AT] = c[TIMED]  # the delay measured before the change is not the delay now
        c[BUFFER_WHY] = why
        c[BUFFER_CHANGES] += 1

    def close(self) -> None:
        self.stream.stop()
        self.stream.close()


def player_main() -> None:
    """The player process: see the module docstring. Says `ok <latency>`
    or `error <json>` on stdout, plays until stdin says close (or closes: the appliance is gone),
    then says `done <priority its callback got>`."""
    from firmware_app.sources.mic import require_sounddevice

    fd, device, start_s = int(sys.argv[1]), sys.argv[2] or None, float(sys.argv[3])
    if os.fstat(fd).st_size != SharedLine.NBYTES:  # another version's layout: every slot would be misread
        error = f"the player process ({__file__}) is another version than the appliance that started it"
        print("error " + json.dumps({"error": error, "outputs": []}), flush=True)
        return
    line = SharedLine(mmap.mmap(fd, SharedLine.NBYTES))
    try:
        sd = require_sounddevice()
        player = Player(sd, line, device, start_s)
    except DeviceError as exc:
        print("error " + json.dumps({"error": exc.cause, "outputs": []}), flush=True)
        return
    except (sd.PortAudioError, ValueError) as exc:
        outputs = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
        print("error " + json.dumps({"error": str(exc), "outputs": outputs}), flush=True)
        return
    print(f"ok {player.stream.latency}", flush=True)
    while not select.select([sys.stdin], [], [], LOOK_S)[0]:  # a line (close) or EOF: the appliance is done
        player.resize_if_wanted()
    player.close()
    print("done " + (player.priority[0] if player.priority else "never"), flush=True)


if __name__ == "__main__":
    player_main()
