"""The player process: feeds the sound device from the shared ring (`ring.play`) and nothing
else, so its callback never waits for the appliance's GIL.

    python -m firmware_app.audio.passthrough.player <memory fd> <device or ''> <buffer s>
"""

from __future__ import annotations

import json
import mmap
import sys

import numpy as np

from firmware_app.audio.passthrough.ring import SharedLine, play
from firmware_app.errors import DeviceError
from firmware_app.frames import SAMPLE_RATE
from firmware_app.platform.priority import make_this_thread_realtime, realtime_threads_spawned


def player_main() -> None:
    """The player process: see the module docstring. Says `ok <latency>`
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
            stream = sd.OutputStream(
                samplerate=SAMPLE_RATE, channels=1, dtype="float32", device=device, callback=callback, latency=buffer_s
            )
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


if __name__ == "__main__":
    player_main()
