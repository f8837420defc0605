"""The voice under a busy CPU: `bench load` (short) with the passthrough into a PulseAudio null
sink while one busy process per core competes. What it must show on any machine: no voice ever
skipped, sound and picture inside the detectable-offset window, the picture still moving. The full
targets (≤ 1 underrun/min, ≥ 15 fps, |A/V| ≤ 20 ms) are the bench's verdict, printed here."""

from __future__ import annotations

import re

import pytest

from conftest import cli

pytestmark = pytest.mark.integration  # every test here starts the CLI, a kiosk or a sound/display server

LINE = re.compile(
    r"load busy=(\d+) seconds=(\S+) skipped_ms=(\S+) underruns=(\d+) \(waits=(\d+) device=(\d+)\) "
    r"underruns_per_min=(\S+) fps=(\S+) av_offset_ms=(\S+) av_offset_p95_ms=(\S+) verdict=(.*)"
)


def test_the_voice_holds_while_every_core_is_busy(pulse, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "audio: {passthrough_device: pulse}\nvideo: {width: 640, height: 360}\noutput: {uri: 'null://'}\n"
    )
    result = cli("bench", "load", "--seconds", "25", "--config", str(config), env=pulse, timeout=300)
    line = LINE.search(result.stdout)
    assert line, result.stdout + result.stderr[-3000:]
    print(line.group(0))
    assert result.returncode == (0 if line.group(11) == "ok" else 1), result.stderr[
        -3000:
    ]  # a missed target fails the command
    busy, skipped, fps, offset = int(line.group(1)), float(line.group(3)), float(line.group(8)), float(line.group(9))
    assert busy >= 1
    assert skipped == 0, line.group(0)  # a late voice is waited for, never dropped
    # ITU-R BT.1359's detectability window (sound ≤ 45 ms early, ≤ 125 ms late): a 25 s run on a
    # CI machine already busy with the suite is still converging; the ±20 ms target is the
    # bench's own verdict over a full run (README, bench load)
    assert -45 <= offset <= 125, line.group(0)
    assert fps > 5, line.group(0)  # frames drop first, but the picture keeps going
