"""Italian spelling → ARPAbet, so PocketSphinx's English acoustic model can align Italian speech.

Italian spelling is close to phonemic; these rules cover it well enough for what we need from
the alignment: where the words, vowels, pauses and the bilabials p, b, m are. Double consonants
are one phone; c/g are soft before e/i ("ci", "gi" before another vowel: the i is silent); "ch",
"gh" hard; "gn" → N Y; "gli" → L Y; "sc" before e/i → SH; "qu" → K W; "z" → T S; h is silent.
"""

from __future__ import annotations

import unicodedata

VOWELS = {"a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW"}
CONSONANTS = {
    "b": "B",
    "d": "D",
    "f": "F",
    "k": "K",
    "l": "L",
    "m": "M",
    "n": "N",
    "p": "P",
    "r": "R",
    "s": "S",
    "t": "T",
    "v": "V",
    "w": "W",
    "j": "Y",
    "y": "IY",
    "x": "K S",
}


def _plain(word: str) -> str:
    """Accents off: à → a, è → e, ..."""
    return "".join(c for c in unicodedata.normalize("NFD", word.lower()) if c.isalpha() and ord(c) < 128)


def pronounce(word: str) -> str:
    """ARPAbet for one Italian word (letters only; digits and symbols must be spelled out)."""
    w = _plain(word)
    phones: list[str] = []
    i = 0
    while i < len(w):
        c, rest = w[i], w[i + 1 :]
        nxt = rest[:1]
        if c in VOWELS:
            phones.append(VOWELS[c])
        elif c == "h":
            pass
        elif c in "cg" and nxt == "h":
            phones.append("K" if c == "c" else "G")
            i += 1
        elif c == "g" and rest.startswith("li"):
            phones += ["L", "Y"]
            i += 1 if rest[2:3] == "" or rest[2:3] not in VOWELS else 2
        elif c == "g" and nxt == "n":
            phones += ["N", "Y"]
            i += 1
        elif c == "s" and nxt == "c" and rest[1:2] in ("e", "i"):
            phones.append("SH")
            i += 2 if rest[1:2] == "i" and rest[2:3] in VOWELS else 1
        elif c in "cg" and nxt in ("e", "i"):
            phones.append("CH" if c == "c" else "JH")
            if nxt == "i" and rest[1:2] in VOWELS:
                i += 1  # "cia", "gio": the i only softens
        elif c == "c" or c == "q":
            phones.append("K")
            if c == "q" and nxt == "u":
                phones.append("W")
                i += 1
        elif c == "g":
            phones.append("G")
        elif c == "z":
            phones += ["T", "S"]
        elif c in CONSONANTS:
            phones += CONSONANTS[c].split()
        if phones and i + 1 < len(w) and w[i + 1] == c and c not in VOWELS:
            i += 1  # a double consonant is one (longer) phone
        i += 1
    return " ".join(phones)


def lexicon(words: list[str]) -> dict[str, str]:
    """{word: ARPAbet} for words as `models.align.normalise_transcript` spells them."""
    return {w: pronounce(w) for w in words if pronounce(w)}
