"""Bad media is refused with one paragraph (cause and fix, exit 7), odd but valid media just
works: never a traceback, never a hang. Each file goes through the real `render`."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from firmware_app.errors import ExitCode
from firmware_app.sources.audio_file import decode_audio

from conftest import PORTRAIT, SPEECH, cli

# every test here runs the CLI on a damaged or odd file: what PyAV's version can change, so CI runs
# them again on the Jetson's pinned versions
pytestmark = [pytest.mark.integration, pytest.mark.wheels]


def pcm16(path: Path, rate: int, channels: int, mono: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.repeat(np.clip(mono, -1, 1)[:, None], channels, axis=1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-media")
    speech = decode_audio(SPEECH)[: 16000 * 2]
    files = {
        "8 kHz 16-bit WAV": pcm16(folder / "8k.wav", 8000, 1, speech[::2]),
        "6-channel 96 kHz WAV": pcm16(folder / "6ch.wav", 96000, 6, np.repeat(speech, 6)),
    }
    header = files["8 kHz 16-bit WAV"].read_bytes()
    (folder / "header.wav").write_bytes(b"RIFX" + header[4:8] + b"WAVXjunkjunk" + header[20:])
    (folder / "empty.wav").write_bytes(b"")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n" * 100)
    clip = folder / "clip.mp4"
    result = cli(
        "render",
        "--audio",
        str(files["8 kHz 16-bit WAV"]),
        "--face",
        str(PORTRAIT),
        "--out",
        str(clip),
        "--size",
        "320x180",
    )
    assert result.returncode == 0, result.stderr
    (folder / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size * 2 // 5])  # index at the end: lost
    faststart = folder / "faststart.mp4"
    with av.open(str(clip)) as source, av.open(str(faststart), "w", options={"movflags": "faststart"}) as target:
        streams = {s.index: target.add_stream_from_template(s) for s in source.streams}
        for packet in source.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                target.mux(packet)
    (folder / "cut-faststart.mp4").write_bytes(
        faststart.read_bytes()[: faststart.stat().st_size * 2 // 5]
    )  # index kept
    portrait = cv2.imread(str(PORTRAIT))
    cv2.imwrite(str(folder / "100mp.jpg"), cv2.resize(portrait, (10000, 10000)), [cv2.IMWRITE_JPEG_QUALITY, 70])
    files.update(
        {
            "WAV with a wrong header": folder / "header.wav",
            "zero-length audio": folder / "empty.wav",
            "zero-length image": folder / "empty.png",
            "text named .jpg": folder / "text.jpg",
            "truncated MP4 (index at the end)": folder / "cut.mp4",
            "truncated MP4 (index first)": folder / "cut-faststart.mp4",
            "100 MP image": folder / "100mp.jpg",
        }
    )
    return files


CASES = [  # (what, as audio or face, must it work)
    ("8 kHz 16-bit WAV", "audio", True),
    ("6-channel 96 kHz WAV", "audio", True),
    ("WAV with a wrong header", "audio", False),
    ("zero-length audio", "audio", False),
    ("truncated MP4 (index at the end)", "audio", False),
    ("truncated MP4 (index at the end)", "face", False),
    ("truncated MP4 (index first)", "face", None),  # what survived may play: either is fine
    ("zero-length image", "face", False),
    ("text named .jpg", "face", False),
    ("100 MP image", "face", True),
]


@pytest.mark.parametrize("what,role,works", CASES, ids=[f"{what} as {role}" for what, role, _ in CASES])
def test_bad_media_is_refused_in_one_paragraph_or_works(media, tmp_path, what, role, works):
    audio = media[what] if role == "audio" else SPEECH
    face = media[what] if role == "face" else PORTRAIT
    out = tmp_path / "out.mp4"
    result = cli(
        "render", "--audio", str(audio), "--face", str(face), "--out", str(out), "--size", "320x180", timeout=180
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if works is None:
        assert result.returncode in (ExitCode.OK, ExitCode.MEDIA), result.stderr[-3000:]
    else:
        assert result.returncode == (ExitCode.OK if works else ExitCode.MEDIA), result.stderr[-3000:]
    if result.returncode == ExitCode.OK:
        assert out.stat().st_size > 0
    else:
        problem = [
            line
            for line in result.stderr.splitlines()
            if " INFO " not in line and " WARNING " not in line and line.strip()
        ]
        assert problem[0].startswith("media error:") and media[what].name in problem[0], problem
        assert problem[1].strip().startswith("fix:") and len(problem) == 2, problem  # one paragraph: cause, fix
