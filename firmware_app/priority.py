"""Thread priorities: when the cores are busy the voice comes first and frames drop instead.

Linux keeps a nice level (and a scheduling policy) per thread. Raising a thread's nice level is
always allowed; lowering it needs CAP_SYS_NICE or RLIMIT_NICE, and a real-time policy needs
RLIMIT_RTPRIO (the kiosk unit grants both with LimitNICE= and LimitRTPRIO=). Where the system
refuses, the thread keeps the process's level and the appliance runs as before.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

AUDIO_RT_PRIORITY = 10  # SCHED_FIFO level for the sound device's callback: low among real-time ones


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


def make_this_thread_realtime(fallback_nice: int) -> str:
    """For the audio device's callback thread, which must never miss its turn: SCHED_FIFO at a
    low real-time level if allowed, else a lower nice level, else nothing. Says which it got.
    The callback does little (a copy from a ring), so a real-time policy cannot starve the rest."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(AUDIO_RT_PRIORITY))  # 0: this thread
        return f"real-time (SCHED_FIFO {AUDIO_RT_PRIORITY})"
    except (OSError, AttributeError):
        pass
    if prioritise_this_thread(fallback_nice):
        return f"nice {fallback_nice:+d}"
    return "normal"
