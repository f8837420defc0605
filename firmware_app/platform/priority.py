"""Thread priorities: when the cores are busy the voice comes first and frames drop instead.

Linux keeps a nice level (and a scheduling policy) per thread. Raising a thread's nice level is
always allowed; lowering it needs CAP_SYS_NICE or RLIMIT_NICE, and a real-time policy needs
RLIMIT_RTPRIO (the kiosk unit grants both with LimitNICE= and LimitRTPRIO=). Where the system
refuses, the thread keeps the process's level and the appliance runs as before.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

AUDIO_RT_PRIORITY = 10  # SCHED_FIFO level for the sound device's threads: low among real-time ones
# The voice thread: the lowest real-time level, so above everything that is not real-time (the
# picture) but below every sound server's own threads (PulseAudio's default realtime-priority
# is 5, PipeWire's 20+). At 5 it tied with the null sink's thread, and on a machine running
# several kiosks at once their voice threads kept the sound server from pulling (2-hour soak:
# the device stopped taking voice for 17 s and 2.2 s of it was lost).
VOICE_RT_PRIORITY = 1


def prioritise_this_thread(relative_nice: int) -> bool:
    """Move the calling thread's nice level by `relative_nice`; False where it is not allowed."""
    try:
        thread = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, max(-20, min(19, now + relative_nice)))
        return True
    except (OSError, AttributeError) as exc:  # not permitted here, or not Linux
        log.debug("thread %s keeps its priority: %s", threading.current_thread().name, exc)
        return False


def make_this_thread_realtime(fallback_nice: int, level: int = AUDIO_RT_PRIORITY) -> str:
    """For a thread that must never miss its turn (the sound device's; the voice thread):
    SCHED_FIFO at a low real-time level if allowed, else a lower nice level, else nothing. Says
    which it got. These threads do little per turn (a copy; 10 ms of features and a small model),
    and the kernel keeps 5% of each core for the rest even so (sched_rt_runtime_us)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(level))  # 0: this thread
        return f"real-time (SCHED_FIFO {level})"
    except (OSError, AttributeError):
        pass
    if prioritise_this_thread(fallback_nice):
        return f"nice {fallback_nice:+d}"
    return "normal"


@contextmanager
def realtime_threads_spawned() -> Iterator[bool]:
    """Threads started inside this block (a sound device's: PortAudio's callback thread, the
    PulseAudio client's mainloop) inherit a low real-time policy where it is allowed; the calling
    thread gets its own policy back afterwards. Through a sound server the device's data passes
    through that mainloop thread too, and at normal priority a busy machine makes it late."""
    try:
        before = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(AUDIO_RT_PRIORITY))
    except (OSError, AttributeError):
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, before[0], before[1])


@contextmanager
def start_up_objects_frozen() -> Iterator[None]:
    """While the loop runs, the objects made at start-up (modules, the models, the tracker: about
    150,000) are out of the garbage collector's sight. A full collection walks every one of them
    holding the GIL: 35-130 ms on a busy machine, which starved the voice thread about every
    30 s (`bench load`: one wait for late voice per run). What the loop itself makes is still
    collected; on leaving they are handed back, so a reloaded pipeline's old objects can go."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
