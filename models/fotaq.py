"""Flight of the Amazon Queen's voiced dialogues: the English talkie's lines and their speech files.

The Debian package `flight-of-the-amazon-queen` holds the freeware CD release as one resource file,
`queen.1c`: a table of contents (`QTBL`, then per entry a 12-byte name, a bundle byte, big-endian
offset and size), the dialogue scripts (`*.DOG`) and one MP3 (11025 Hz mono) per spoken segment
(`*.SB`). A dialogue script, after its 20-byte bank header, starts with a header of big-endian
16-bit fields (levels, key, talk key, number of Joe's and of the other person's lines, ...,
offsets of the person's lines and of the "second meeting" lines), a dialogue tree of 96 bytes per
level, then Joe's lines; each line is [2 bytes, id, length byte, text padded to 4 bytes]. The two
"second meeting" lines are [length byte, text padded to 2 bytes] each.

A line's voice files are named after the script's talk key, the line's id and who speaks:
`%02d%04X` + `J` (Joe) or `P` (the other person) + the segment number (1-based, hex). A line is
cut into segments by its stage directions (`*` and two letters, or `*XY00(x,y)`), one file each.
The person is the character the script is named after (`FAYE3.DOG` → faye); Joe is one actor.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

RESOURCE = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
BANK_HEADER = 20  # the AMOS bank header in front of every dialogue script
TREE_BYTES_PER_LEVEL = 96
STAGE_DIRECTION = re.compile(r"\*(?:XY\d\d\(\d+,\d+\)|..)")
NOT_WORDS = re.compile(r"[<>()\[\]0-9:]")  # noises ("<gulp>", "(sigh)"), numbers, a list that follows


@dataclass(frozen=True)
class Line:
    voice_file: str  # the resource's name, e.g. "020006J1.SB"
    speaker: str  # "joe" or the character the script is named after
    text: str


def table_of_contents(data: bytes) -> dict[str, tuple[int, int]]:
    """name → (offset, size) of every resource in a `QTBL` file."""
    if data[:4] != b"QTBL":
        raise ValueError("not a Flight of the Amazon Queen resource file (no QTBL table)")
    count = struct.unpack(">H", data[13:15])[0]
    entries, at = {}, 15
    for _ in range(count):
        name = data[at : at + 12].split(b"\0")[0].decode("latin-1")
        offset, size = struct.unpack(">II", data[at + 13 : at + 21])
        entries[name] = (offset, size)
        at += 21
    return entries


def _text(script: bytes, at: int, align: int) -> tuple[str, int]:
    """A length-prefixed string at `at` and the offset after it (padded to `align`)."""
    length = script[at]
    at += 1
    text = script[at : at + length].decode("latin-1")
    return text, ((at + length + align - 1) & ~(align - 1)) if length else at


def _lines_at(script: bytes, at: int, count: int) -> list[tuple[int, str]]:
    out = []
    for _ in range(count):
        ident = struct.unpack(">h", script[at + 2 : at + 4])[0]
        text, at = _text(script, at + 4, 4)
        out.append((ident, text))
    return out


def script_lines(script: bytes, character: str) -> list[tuple[str, str, str]]:
    """(voice-file prefix, speaker, line text) of one dialogue script (bank header removed)."""
    field = lambda i: struct.unpack(">h", script[2 * i : 2 * i + 2])[0]  # noqa: E731
    levels, talk_key, joe_count, person_count = abs(field(0)), field(2), field(3), field(4)
    person_at, again_at = struct.unpack(">H", script[22:24])[0], struct.unpack(">H", script[26:28])[0]
    joe_at = 32 + levels * TREE_BYTES_PER_LEVEL
    out = []
    for ident, text in _lines_at(script, joe_at, joe_count):
        if ident < 0:
            continue
        # the first of Joe's lines (id 0) is his greeting, filed under SSSS
        out.append((f"{talk_key:02d}{'SSSS' if ident == 0 else f'{ident:04X}'}J", "joe", text))
    out += [
        (f"{talk_key:02d}{ident:04X}P", character, text) for ident, text in _lines_at(script, person_at, person_count)
    ]
    again_person, at = _text(script, again_at, 2)
    again_joe, _ = _text(script, at, 2)
    out += [(f"{talk_key:02d}XXXXP", character, again_person), (f"{talk_key:02d}XXXXJ", "joe", again_joe)]
    return out


def dialogue_lines(data: bytes) -> list[Line]:
    """Every spoken segment of every dialogue script whose voice file exists and whose text is
    plain words (noises, numbers and lists introduced by a colon are left out)."""
    contents = table_of_contents(data)
    out = []
    for name in sorted(n for n in contents if n.endswith(".DOG")):
        offset, size = contents[name]
        character = re.sub(r"\d+$", "", name[:-4]).lower()
        for prefix, speaker, text in script_lines(data[offset + BANK_HEADER : offset + size], character):
            for index, segment in enumerate(STAGE_DIRECTION.split(text)):
                voice_file = f"{prefix}{index + 1:X}.SB"
                segment = segment.replace("^_", "").strip()
                if voice_file in contents and segment and not NOT_WORDS.search(segment):
                    out.append(Line(voice_file, speaker, segment))
    return out


def extract(resource: Path, folder: Path) -> list[tuple[Path, Line]]:
    """Write each dialogue line's MP3 into `folder` (once) and pair it with its line."""
    data = resource.read_bytes()
    contents = table_of_contents(data)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for line in dialogue_lines(data):
        path = folder / (line.voice_file[:-3] + ".mp3")
        if not path.exists():
            offset, size = contents[line.voice_file]
            path.write_bytes(data[offset : offset + size])
        out.append((path, line))
    return out
