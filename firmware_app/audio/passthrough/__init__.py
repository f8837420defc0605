"""Audio passthrough: the appliance plays the voice through its own speaker, delayed so that what
visitors hear lands together with the mouth they see (people notice sound that leads the picture
most; ATSC IS-191 allows 15 ms lead).

The voice must never glitch when the CPU is busy, so the line is built to bend, not break:

- the sound device is fed by its own small process (`player.py`): its callback never waits for
  this process's GIL, which a tracker or renderer thread may hold while the busy cores have
  preempted it (that wait is what made the device run dry). It gets a real-time or raised
  priority where the system allows, and does nothing but copy from a ring;
- the ring (`ring.py`) is one block of shared memory (memfd: never on a disk) that the voice thread writes and
  the player reads, lock-free: every slot has one writer;
- the device buffer is as small as this machine holds now (`buffer.py`): it starts near 15 ms,
  doubles when the device runs dry or its callbacks come late, halves again after quiet minutes,
  changes only in silence and says so in the log; the latency the device reports is part of the
  measured delay;
- when the voice has not arrived by its play-out time (the voice thread was starved), the line
  waits for it instead of skipping it: the voice plays later and nothing is lost. The delay line
  says so (`play_delay_s` is measured against the wall clock), it keeps a floor that covers the
  lateness seen lately (`floor_s`), and the picture is held to that floor (`runners/avsync.py`), so sound
  and picture stay together;
- the delay moves only inside silence, so nobody hears it move (a long silence may be skipped at
  once: a delay far above its target comes down in the next pause).
"""

from firmware_app.audio.passthrough.line import VoicePassthrough, passthrough_delay_s

__all__ = ["VoicePassthrough", "passthrough_delay_s"]
