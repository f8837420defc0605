"""Real human speech from the package registries (never committed): fetch, unpack, list utterances.

Each source is a Debian package holding recordings, and where it exists, their transcript
(`../shared/speech/SOURCES.md`). `fetch` downloads the packages with `apt-get download` into a
cache folder and unpacks them with `dpkg -x`; `utterances` lists every recording as a
`Recording` (source, speaker, language, how to decode it, transcript or None).

| source | speakers | audio | transcript |
|---|---|---|---|
| `allison` | Allison Smith (US female, studio prompts) | G.722, 16 kHz | `core-sounds-en.txt.gz` |
| `drascula` | 10 voice actors, one per character (file prefix) | raw unsigned 8-bit, 11025 Hz | `drascula.dat` string tables |
| `fotaq` | Joe King and about 30 other characters of *Flight of the Amazon Queen* (Australian voice cast, 1995) | MP3, 11025 Hz | the game's dialogue scripts (`models/fotaq.py`) |
| `asterisk-it` | Carlo (Italian male, studio prompts) | G.722, 16 kHz | `core-sounds-it.txt.gz`, aligned through Italian letter-to-sound rules (`models/italian.py`) |

The other Asterisk languages are left out: Spanish is voiced by Allison (the English training
speaker), French spelling is too far from its sound for letter rules, and Russian has no text.
"""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import fotaq

SAMPLE_RATE = 16_000

PACKAGES: dict[str, list[str]] = {
    "allison": ["asterisk-core-sounds-en-g722", "asterisk-core-sounds-en"],
    "drascula": ["drascula"],
    "asterisk-it": ["asterisk-core-sounds-it-g722", "asterisk-core-sounds-it"],
    "fotaq": ["flight-of-the-amazon-queen"],
}
ASTERISK = "usr/share/asterisk/sounds"
ITALIAN = "it_IT_m_Carlo"
DRASCULA = "usr/share/scummvm/drascula/en"
# Character string tables of drascula.dat in file order after the hero's, and the voice-file
# prefix of the actor who speaks each (`D12.ALS` = line 12 of Drascula's table).
DRASCULA_CHARACTERS = [
    ("", "john"),
    ("D", "drascula"),
    ("B", "drunk"),
    ("BJ", "bj"),
    ("E", "e"),
    ("I", "igor"),
    ("L", "l"),
    ("P", "pianist"),
    ("T", "bartender"),
    ("VB", "vonbraun"),
]
DRASCULA_LANGUAGES = 6  # each table is stored once per language, English first


@dataclass(frozen=True)
class Recording:
    source: str
    speaker: str  # "<source>:<name>", unique across sources
    language: str
    path: Path
    transcript: str | None
    encoding: str  # "ffmpeg" (any format PyAV reads), "g722", "u8-11025"

    @property
    def key(self) -> str:
        return f"{self.speaker}/{self.path.name}"


def fetch(cache: Path, sources: list[str]) -> Path:
    """Download and unpack the packages of `sources` into `cache/root` (skips what is there)."""
    debs, root = cache / "debs", cache / "root"
    debs.mkdir(parents=True, exist_ok=True)
    unpacked = root / ".unpacked"  # one marker per package: a copied cache may hold the .deb but not its files
    unpacked.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for package in PACKAGES[source]:
            if not list(debs.glob(f"{package}_*.deb")):
                result = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
                if result.returncode != 0:
                    raise RuntimeError(
                        f"cannot download the Debian package {package!r} ({result.stderr.strip()[-200:]}): "
                        "run `apt-get update` once (as root), or check that Debian's archive is reachable"
                    )
            if not (unpacked / package).exists():
                subprocess.run(["dpkg", "-x", str(next(debs.glob(f"{package}_*.deb"))), str(root)], check=True)
                (unpacked / package).touch()
    return root


def utterances(root: Path, sources: list[str]) -> list[Recording]:
    listers = {"allison": _allison, "drascula": _drascula, "asterisk-it": _italian, "fotaq": _fotaq}
    return [recording for source in sources for recording in listers[source](root)]


def _asterisk(root: Path, source: str, language: str, voice: str) -> list[Recording]:
    """Prompts listed as `name: words` in the package's core-sounds-LANG.txt.gz."""
    listing = root / f"usr/share/doc/asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz"
    text = gzip.decompress(listing.read_bytes()).decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        name, sep, words = line.partition(":")
        # comments, tones and sound effects; digits and damaged characters cannot be aligned
        if not sep or line.startswith(";") or "[" in words or (language != "en" and re.search(r"[0-9?\ufffd]", words)):
            continue
        path = root / ASTERISK / voice / f"{name.strip()}.g722"
        if path.exists() and words.strip():
            out.append(Recording(source, f"{source}:{voice}", language, path, words.strip(), "g722"))
    return out


def _allison(root: Path) -> list[Recording]:
    return _asterisk(root, "allison", "en", "en_US_f_Allison")


def _italian(root: Path) -> list[Recording]:
    return _asterisk(root, "asterisk-it", "it", ITALIAN)


def drascula_tables(data: bytes) -> list[list[str]]:
    """The string tables of ScummVM's drascula.dat: runs of records [uint32 big-endian size,
    NUL-padded text], size counting its own 4 bytes; a run is one table in one language."""

    def run_at(i: int) -> tuple[list[str], int]:
        strings = []
        while i + 4 <= len(data):
            size = struct.unpack(">I", data[i : i + 4])[0]
            if not (4 <= size < 1024 and size % 4 == 0 and i + size <= len(data)):
                break
            text = data[i + 4 : i + size].split(b"\0")[0]
            if any(c < 32 or c == 127 for c in text):
                break
            strings.append(text.decode("latin-1"))
            i += size
        return strings, i

    tables, i = [], data.find(b"\x00\x00\x00\x04", 8)  # the first table opens with an empty line 0
    while 0 <= i and i + 4 <= len(data):
        strings, end = run_at(i)
        if len(strings) >= 8 and strings[0] == "":
            tables.append(strings)
            i = end
        else:
            i += 1
    return tables


def _drascula(root: Path) -> list[Recording]:
    folder = root / DRASCULA
    tables = drascula_tables((folder / "drascula.dat").read_bytes())
    english = tables[::DRASCULA_LANGUAGES][: len(DRASCULA_CHARACTERS)]
    out = []
    for (prefix, name), lines in zip(DRASCULA_CHARACTERS, english):
        for path in sorted(folder.glob(f"{prefix}[0-9]*.ALS")):
            number = int(re.fullmatch(rf"{prefix}(\d+)", path.stem).group(1))
            if 0 < number < len(lines) and lines[number].strip():
                out.append(Recording("drascula", f"drascula:{name}", "en", path, lines[number], "u8-11025"))
    return out


def _fotaq(root: Path) -> list[Recording]:
    """The game's voiced dialogue segments, unpacked once into `root/fotaq-speech`."""
    pairs = fotaq.extract(root / fotaq.RESOURCE, root / "fotaq-speech")
    return [Recording("fotaq", f"fotaq:{line.speaker}", "en", path, line.text, "ffmpeg") for path, line in pairs]


def decode(recording: Recording) -> np.ndarray:
    """float32 mono 16 kHz. Band-limited sources stay band-limited (no spectrum is invented)."""
    from scipy.signal import resample_poly

    if recording.encoding == "u8-11025":
        raw = np.frombuffer(recording.path.read_bytes(), np.uint8).astype(np.float32)
        audio = (raw - 128.0) / 128.0
        audio -= audio.mean() if len(audio) else 0.0
        return resample_poly(audio, 640, 441).astype(np.float32)  # 11025 → 16000
    import av

    from firmware_app.sources.audio_file import decode_audio

    if recording.encoding == "g722":
        with av.open(str(recording.path), format="g722") as container:
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE)
            chunks = [o.to_ndarray()[0] for f in container.decode(audio=0) for o in resampler.resample(f)]
            chunks += [o.to_ndarray()[0] for o in resampler.resample(None)]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return decode_audio(recording.path)
