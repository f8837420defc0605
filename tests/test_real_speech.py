"""Real-speech corpus: string tables, acoustic release anchors, label correction, the new scores,
the Italian letter-to-sound rules, and (with Debian's archive reachable) a smoke build from the
real packages."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from models import bursts, fotaq, italian
from models.metrics import Tally, shut_frames
from models.real_corpus import SOURCE_SPLITS, SPLITS, corrected, judge_alignment
from models.real_sources import drascula_tables
from models.targets import SEAL_MARGIN, make_targets
from tests.conftest import PROJECT

SR = 16_000


def _table(lines: list[str]) -> bytes:
    out = b""
    for text in lines:
        body = text.encode("latin-1") + b"\0" if text else b""  # as drascula.dat stores them
        body += b"\0" * (-len(body) % 4)
        out += struct.pack(">I", len(body) + 4) + body
    return out


def test_drascula_tables_are_read_record_by_record():
    english = [""] + [f"LINE NUMBER {i}, SAID ALOUD" for i in range(1, 12)]
    spanish = [""] + [f"LINEA {i}" for i in range(1, 12)]
    data = b"DRASCULA\x06\x00" + b"\x00\x9fA\x00" * 5 + _table(english) + b"\x00\x00\x00\x0b" + _table(spanish)
    tables = drascula_tables(data)
    assert tables[0] == english
    assert tables[1] == spanish


def _queen_lines(lines: list[tuple[int, str]]) -> bytes:
    out = b""
    for ident, text in lines:
        out += struct.pack(">hh", 0, ident) + bytes([len(text)]) + text.encode("latin-1")
        out += b"\0" * (-len(out) % 4)  # padded to 4 bytes from the script's start (which is aligned)
    return out


def _queen_resource(scripts: dict[str, bytes], voice_files: list[str]) -> bytes:
    """A QTBL resource file as the freeware talkie stores it: table of contents, then the data."""
    named = {**{n: b"AmBk" + b"\0" * 16 + s for n, s in scripts.items()}, **{n: b"\xff\xe3mp3" for n in voice_files}}
    header_size = 15 + 21 * len(named)
    table, body = b"", b""
    for name, data in named.items():
        table += name.encode().ljust(12, b"\0") + b"\x01" + struct.pack(">II", header_size + len(body), len(data))
        body += data
    return b"QTBL" + b"CEM10\0" + b"\0\0" + b"\x01" + struct.pack(">H", len(named)) + table + body


def test_fotaq_dialogue_lines_pair_each_voice_file_with_its_words():
    joe = _queen_lines([(0, "Hello there."), (5, "Who are you?*FLNice hat."), (6, "<gulp>")])
    person = _queen_lines([(5, "I am the chief*WT of this village.")])
    levels, joe_at = 1, 32 + 96
    person_at = joe_at + len(joe)
    again_at = person_at + len(person)
    again = bytes([12]) + b"Back again?!" + b"\0" + bytes([4]) + b"Yes."  # each padded to 2 bytes
    header = (
        struct.pack(">hhhhh", -levels, 3, 7, 3, 1)
        + b"\0" * 12
        + struct.pack(">HHH", person_at, 0, again_at)
        + b"\0" * 4
    )
    script = header + b"\0" * 96 + joe + person + again
    files = ["07SSSSJ1.SB", "070005J1.SB", "070005J2.SB", "070006J1.SB", "070005P1.SB", "07XXXXP1.SB", "07XXXXJ1.SB"]
    lines = fotaq.dialogue_lines(_queen_resource({"CHIEF2.DOG": script}, files))
    assert [(x.voice_file, x.speaker, x.text) for x in lines] == [
        ("07SSSSJ1.SB", "joe", "Hello there."),
        ("070005J1.SB", "joe", "Who are you?"),
        ("070005J2.SB", "joe", "Nice hat."),
        ("070005P1.SB", "chief", "I am the chief"),  # its second segment has no voice file: left out
        ("07XXXXP1.SB", "chief", "Back again?!"),
        ("07XXXXJ1.SB", "joe", "Yes."),
    ]  # a noise ("<gulp>") is no words
    with pytest.raises(ValueError, match="QTBL"):
        fotaq.table_of_contents(b"RIFF" + b"\0" * 40)


def _vowel(rng: np.random.Generator, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 700, 1200, 2500, 3400), 1))
    return (0.2 * tone + 0.01 * rng.normal(size=len(t))).astype(np.float32)


def _stop_then_vowel(rng: np.random.Generator, burst_at: float) -> np.ndarray:
    """vowel, a near-silent 70 ms closure, a 12 ms broadband burst at `burst_at`, vowel."""
    closure_start = burst_at - 0.07
    audio = np.concatenate([_vowel(rng, closure_start), 1e-4 * rng.normal(size=int(0.07 * SR)).astype(np.float32)])
    burst = (0.3 * rng.normal(size=int(0.012 * SR)) * np.exp(-np.arange(int(0.012 * SR)) / 80)).astype(np.float32)
    return np.concatenate([audio, burst, _vowel(rng, 0.3)])


def test_a_burst_after_a_closure_is_found_where_it_is():
    rng = np.random.default_rng(0)
    burst_at = 0.3137
    audio = _stop_then_vowel(rng, burst_at)
    found = bursts.release_near(audio, burst_at + 0.025)  # aligners put the release late
    assert found is not None and abs(found - burst_at) < 0.003
    assert any(abs(t - burst_at) < 0.003 for t in bursts.find_releases(audio))


def test_no_burst_without_a_closure():
    rng = np.random.default_rng(1)
    audio = _vowel(rng, 0.8)
    assert bursts.release_near(audio, 0.4) is None


def test_parting_time_is_the_upward_crossing_after_the_closure():
    aperture = np.array([0.4, 0.3, 0.05, 0.0, 0.0, 0.0, 0.03, 0.07, 0.3, 0.5])
    parted = bursts.parting_time(aperture, 0.065)
    assert parted == pytest.approx(0.065, abs=1e-6)  # crosses 0.05 half way from frame 6 to 7
    assert bursts.parting_time(np.full(10, 0.3), 0.05) is None  # never closed: no parting


def test_labels_are_corrected_for_the_aligner_and_seal_until_the_burst():
    phonemes = [("sil", 0.0, 0.2), ("ɑ", 0.2, 0.4), ("b", 0.4, 0.5), ("ɑ", 0.5, 0.8), ("sil", 0.8, 1.0)]
    burst = 0.478
    fixed = corrected(phonemes, [("b", 0.5, burst)], bias_s=0.02)
    assert [p for p, _, _ in fixed] == [p for p, _, _ in phonemes]
    assert fixed[1][1] == pytest.approx(0.18) and fixed[-1][2] == 1.0  # shifted by the bias, same length
    start, end = fixed[2][1], fixed[2][2]
    assert end - SEAL_MARGIN * (end - start) == pytest.approx(burst)  # the seal ends on the burst
    targets = make_targets(fixed, 100)
    parted = bursts.parting_time(targets.aperture, burst)
    assert parted is not None and abs(parted - burst) <= 0.01  # within one 10 ms frame of the burst


def test_a_poor_alignment_is_judged_poor():
    rng = np.random.default_rng(2)
    audio = np.concatenate([_vowel(rng, 0.5), np.zeros(SR // 2, np.float32), _vowel(rng, 0.5)])
    good = [("sil", 0.0, 0.02), ("ɑ", 0.02, 0.5), ("sil", 0.5, 1.0), ("ɑ", 1.0, 1.5)]
    speech_over_silence = [
        ("sil", 0.0, 0.02),
        ("ɑ", 0.02, 0.3),
        ("n", 0.3, 0.55),
        ("ɑ", 0.55, 1.05),
        ("sil", 1.05, 1.5),
    ]
    assert judge_alignment(audio, good) == ""
    assert "near silence" in judge_alignment(audio, speech_over_silence) or "phone" in judge_alignment(
        audio, speech_over_silence
    )


def test_false_open_counts_open_frames_where_the_lips_must_be_shut():
    phonemes = [("sil", 0.0, 0.3), ("ɑ", 0.3, 0.5), ("m", 0.5, 0.6), ("ɑ", 0.6, 0.8), ("sil", 0.8, 1.0)]
    shut = shut_frames(phonemes, 100)
    assert shut[10] and shut[55] and not shut[40] and not shut[51]
    ref = make_targets(phonemes, 100)
    honest, always_open = Tally(), Tally()
    honest.add(np.eye(15)[ref.visemes], ref.aperture, phonemes)
    always_open.add(np.eye(15)[ref.visemes], np.full(100, 0.6) + 0.01 * np.arange(100) / 100, phonemes)
    assert honest.results()["false_open_rate"] == 0.0
    assert always_open.results()["false_open_rate"] > 0.9


def test_italian_spelling_rules():
    assert italian.pronounce("chiamata") == "K IY AA M AA T AA"
    assert italian.pronounce("cena") == "CH EH N AA"
    assert italian.pronounce("giorno") == "JH OW R N OW"
    assert italian.pronounce("gnocchi") == "N Y OW K IY"
    assert italian.pronounce("pizza") == "P IY T S AA"
    assert italian.pronounce("scena") == "SH EH N AA"
    assert italian.pronounce("questo") == "K W EH S T OW"
    assert italian.pronounce("è") == "EH"


def test_splits_hold_out_whole_speakers():
    splits = set(SPLITS.values())
    assert {"train", "validation", "test", "test_foreign"} <= splits
    assert len(SPLITS) == len(set(SPLITS))  # one split per speaker, by construction of the dict
    # a whole-source split is never a split that chooses or judges
    assert set(SOURCE_SPLITS.values()) == {"train"} and not {s.split(":")[0] for s in SPLITS} & set(SOURCE_SPLITS)


@pytest.mark.integration
@pytest.mark.slow
def test_smoke_build_from_the_real_packages(tmp_path):
    """Downloads the Debian packages (~80 MB), aligns a few recordings per speaker, writes the
    manifest and splits with no speaker in two splits."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("needs Debian's apt-get and dpkg to fetch the recordings")
    probe = subprocess.run(["apt-get", "download", "--print-uris", "drascula"], capture_output=True, text=True)
    if probe.returncode != 0 or "drascula" not in probe.stdout:
        pytest.skip(f"Debian's archive is not reachable here (apt-get update first?): {probe.stderr.strip()[-120:]}")
    result = subprocess.run(
        [sys.executable, "-m", "models.real_corpus", "--out", str(tmp_path), "--smoke"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    seen: dict[str, str] = {}
    for split, info in manifest["splits"].items():
        for speaker in info["speakers"]:
            assert seen.setdefault(speaker, split) == split, f"{speaker} is in {seen[speaker]} and {split}"
    assert manifest["splits"]["train"]["utterances"] > 0 and manifest["splits"]["test"]["utterances"] > 0
    assert "allison" in manifest["aligner_bias"] and manifest["by_source"]["drascula"]["kept"] > 0
    assert manifest["by_source"]["fotaq"]["kept"] > 0  # the game's cast: training only
    assert [s for split, info in manifest["splits"].items() for s in info["speakers"] if s.startswith("fotaq:")] == [
        s for s in manifest["splits"]["train"]["speakers"] if s.startswith("fotaq:")
    ]
    test = np.load(tmp_path / "test.npy", allow_pickle=True)
    assert all(r["phonemes"][-1][2] == pytest.approx(len(r["audio"]) / SR, abs=0.02) for r in test)
    # trained on both corpora (a few steps), chosen on validation, scored per split and speaker
    synthetic = tmp_path / "synthetic"
    for command in (
        ["models.corpus", "--out", str(synthetic), "--smoke"],
        [
            "models.train",
            "--corpus",
            str(synthetic),
            "--real",
            str(tmp_path),
            "--out",
            str(tmp_path / "m.onnx"),
            "--steps",
            "4",
            "--check-every",
            "2",
        ],
        ["models.tune", str(tmp_path / "m.pt"), "--real", str(tmp_path), "--out", str(tmp_path / "tune.json")],
        [
            "models.eval",
            "--real",
            str(tmp_path),
            "--no-synthetic",
            "--model",
            str(tmp_path / "m.onnx"),
            "--out",
            str(tmp_path / "report"),
        ],
    ):
        run = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stderr[-2000:]
    trained = json.loads((tmp_path / "m.train.json").read_text())
    assert trained["check_split"] == "real validation speakers" and trained["chosen_step"] in (2, 4)
    tuned = json.loads((tmp_path / "tune.json").read_text())
    assert tuned["chosen"]["weights"] == str(tmp_path / "m.pt") and set(tuned["chosen"]) >= {
        "validation",
        "validation_pitch+4st",
    }
    results = json.loads((tmp_path / "report" / "eval.json").read_text())
    assert {"validation", "validation_pitch+4st", "test", "test_pitch+4st", "test_foreign"} <= set(results["splits"])
    assert set(results["speakers"]["test"]) <= {s for s, split in SPLITS.items() if split == "test"}
    for metrics in results["splits"]["test"].values():
        assert 0.0 <= metrics["false_open_rate"] <= 1.0 and metrics["bursts"] >= 0


@pytest.mark.integration
def test_eval_command_scores_a_folder_of_recordings(tmp_path):
    """`python -m models.eval DIR` (the lab's command): any folder of audio + transcript, aligned on the fly."""
    pytest.importorskip("pocketsphinx", reason="needs the train extra")
    pytest.importorskip("pylipsync", reason="needs the train extra")
    from firmware_app.sources.audio_file import write_wav
    from models import synth

    def lab_eval(*args: str) -> subprocess.CompletedProcess:  # the lab's command, from the checkout
        return subprocess.run(
            [sys.executable, "-m", "models.eval", *args], capture_output=True, text=True, timeout=600, cwd=PROJECT
        )

    sentences = {
        "anna": ["Bob bought a big blue boat.", "Put the paper back in the box."],
        "ben": ["My mother makes apple pie.", "Maybe the baby can play."],
    }
    for speaker, lines in sentences.items():
        (tmp_path / "voices" / speaker).mkdir(parents=True)
        for i, line in enumerate(lines):
            voice = "en-us" if speaker == "anna" else "en-us+m3"
            utterance = synth.espeak_utterance(line, voice)
            write_wav(tmp_path / "voices" / speaker / f"{i}.wav", utterance.audio)
            (tmp_path / "voices" / speaker / f"{i}.txt").write_text(line)
    (tmp_path / "voices" / "anna" / "untranscribed.wav").write_bytes(
        (tmp_path / "voices" / "anna" / "0.wav").read_bytes()
    )
    result = lab_eval(str(tmp_path / "voices"), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "4 of 4 recordings aligned" in result.stdout
    results = json.loads((tmp_path / "report" / "eval.json").read_text())
    assert set(results["speakers"]["voices"]) == {"anna", "ben"}
    learned = results["splits"]["voices"]["learned model"]
    assert learned["closures"] >= 8 and 0.0 <= learned["closure_recall"] <= 1.0
    assert "| learned model |" in (tmp_path / "report" / "eval.md").read_text()

    missing = lab_eval(str(tmp_path / "nowhere"))
    assert missing.returncode == 4 and "fix:" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = lab_eval(str(tmp_path / "empty"))
    assert empty.returncode == 4 and "transcript" in empty.stderr


def test_weights_and_output_stage_are_chosen_closest_to_every_target_with_the_mouth_shut():
    pytest.importorskip("torch", reason="needs the train extra (PyTorch): models.tune imports it")
    from models.tune import choose, summary

    base = {
        "viseme_accuracy": 0.6,
        "closure_recall": 0.92,
        "open_vowel_recall": 0.8,
        "aperture_correlation": 0.7,
        "burst_error_ms": 12.0,
        "false_open_rate": 0.03,
    }

    def both(**changes):  # the same on validation, changed on it pitched up
        return {"validation": base, "validation_pitch+4st": {**base, **changes}}

    results = {
        ("a.pt", 1.0, (0.1, 0.25), 0.0): both(),
        ("a.pt", 1.5, (0.1, 0.25), 0.0): both(
            open_vowel_recall=0.99, false_open_rate=0.09
        ),  # better, but opens on closures
        ("b.pt", 1.2, (0.1, 0.25), 5.0): both(
            open_vowel_recall=0.85, closure_recall=0.85
        ),  # 0.05 more open, 0.05 fewer closures
        ("b.pt", 1.2, (0.05, 0.2), 5.0): both(open_vowel_recall=0.84),
    }
    assert choose(results) == ("b.pt", 1.2, (0.05, 0.2), 5.0)
    results[("a.pt", 1.0, (0.03, 0.15), 10.0)] = both(
        closure_recall=1.0, open_vowel_recall=0.84, aperture_correlation=0.69
    )
    assert choose(results) == ("b.pt", 1.2, (0.05, 0.2), 5.0)  # surplus closures do not pay for a weaker correlation
    results[("a.pt", 1.0, (0.03, 0.15), 10.0)] = both(
        closure_recall=1.0, open_vowel_recall=0.84, aperture_correlation=0.7
    )
    assert choose(results) == ("a.pt", 1.0, (0.03, 0.15), 10.0)  # level on every target: the better mean wins
    best = summary(results, choose(results))["best_per_weights"]  # what models/mouth.tune.json keeps
    assert [(r["weights"], r["seal"]) for r in best] == [("a.pt", (0.03, 0.15)), ("b.pt", (0.05, 0.2))]


def test_the_aligned_reference_is_scored_against_the_exact_timing(tmp_path):
    """`models.eval.reference_cases`: held-out synthetic speech labelled twice, exactly and by the
    aligner as real speech is, so the report can say what the PocketSphinx reference itself costs."""
    pytest.importorskip("pocketsphinx", reason="needs the train extra")
    from models import synth
    from models.eval import reference_cases, reference_table, synthetic_cases

    lines = {
        "heldout_sentence": ["Bob bought a big blue boat.", "Put the paper back in the box."],
        "heldout_voice": ["My mother makes apple pie.", "Maybe the baby can play."],
    }
    for split, texts in lines.items():
        voice = "en-us" if split == "heldout_sentence" else "en-us+m3"
        records = [
            {"audio": u.audio, "phonemes": u.phonemes, "voice": u.voice, "text": u.text}
            for u in (synth.espeak_utterance(text, voice) for text in texts)
        ]
        np.save(tmp_path / f"{split}.npy", np.array(records, dtype=object), allow_pickle=True)
    cases, info = reference_cases(synthetic_cases(tmp_path))
    exact, aligned = cases["reference_exact"], cases["reference_aligned"]
    assert info["kept"] == len(exact) == len(aligned) >= 3 and info["recordings"] == 4
    for truth, labelled in zip(exact, aligned):
        assert truth.speaker == labelled.speaker and np.array_equal(truth.audio, labelled.audio)
        assert labelled.phonemes != truth.phonemes  # the aligner's own boundaries, not a copy of the exact ones
    agreement = info["agreement"]
    assert 0.6 < agreement["viseme_accuracy"] < 1.0 and agreement["closures"] >= 10
    assert "| PocketSphinx reference |" in reference_table(info)
