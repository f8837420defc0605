"""Heavy, timing-preserving augmentation of 16 kHz speech, and non-speech negatives.

numpy/scipy only (plus the ``sox`` program for :func:`pitch_shift`); every random choice comes
from the ``numpy.random.Generator`` passed in, so results are reproducible.

Timing is never shifted: every filter is zero-phase (``sosfiltfilt``), resampling uses
``resample_poly`` (delay-compensated linear-phase FIR), and the room impulse response has its
direct path at sample 0 (the reverb tail is truncated at the clip's end). The tests check that
the cross-correlation of input and output peaks at lag 0.

    augment(audio, rng)      random chain, each stage with its probability (P_* below):
                             room reverb (synthetic RIR, RT60 0.1-0.8 s, direct/reverberant
                             -5..+15 dB; p .5) → additive noise (white, pink, brown, babble of
                             3-7 shuffled copies of the clip, or speech-shaped noise; SNR 0-30 dB
                             against the active speech level; p .6) → high-pass 80-300 Hz (p .35)
                             → low-pass 3-7.5 kHz (p .35) → telephone: 300-3400 Hz, 8 kHz round
                             trip, 8-bit mu-law (p .12) → gain -20..+6 dB re the input's peak
                             (p .9) → tanh soft clipping, 3-20 dB drive (p .15) → clip to ±1
    pitch_shift(audio, c)    sox ``pitch`` (WSOLA time-stretch + resample, 30 ms segments) with
                             its measured 1-4 ms displacement compensated: same length,
                             timing within ±1 ms (median, ±25..±400 cents)
    negatives(rng, seconds)  sounds the mouth must stay closed for: breaths, clicks/taps,
                             music-like tones/chords, mains hum, door/room noise, and silence
                             with a noise floor
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfiltfilt

SAMPLE_RATE = 16000
NYQUIST = SAMPLE_RATE / 2

# Probability of each stage in augment().
P_REVERB = 0.5
P_NOISE = 0.6
P_HIGHPASS = 0.35
P_LOWPASS = 0.35
P_TELEPHONE = 0.12
P_GAIN = 0.9
P_SOFTCLIP = 0.15


# ---------------------------------------------------------------------------------------------
# building blocks


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _active_rms(x: np.ndarray, frame: int = 320) -> float:
    """RMS over the frames within 40 dB of the loudest (speech level, not diluted by pauses)."""
    n = len(x) // frame
    if n < 1:
        return _rms(x)
    power = np.mean(np.square(x[: n * frame].astype(np.float64).reshape(n, frame)), axis=1)
    active = power[power > power.max() * 1e-4]
    return float(np.sqrt(active.mean())) if len(active) else 0.0


def _zero_phase(x: np.ndarray, order: int, cutoff, kind: str) -> np.ndarray:
    sos = butter(order, cutoff, btype=kind, fs=SAMPLE_RATE, output="sos")
    if len(x) <= 3 * (2 * len(sos) + 1):
        return x
    return sosfiltfilt(sos, x)


def colored_noise(rng: np.random.Generator, n: int, kind: str = "white") -> np.ndarray:
    """Unit-RMS noise: white, pink (1/f power), brown (1/f² power) or blue (f power)."""
    if n <= 0:
        return np.zeros(0)
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    else:
        exponent = {"pink": -0.5, "brown": -1.0, "blue": 0.5}[kind]
        spectrum = np.fft.rfft(white)
        f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        f[0] = f[1] if n > 1 else 1.0
        spectrum *= (f / 1000.0) ** exponent
        spectrum[0] = 0
        out = np.fft.irfft(spectrum, n)
    return out / (_rms(out) + 1e-12)


def _speech_shaped_noise(rng: np.random.Generator, audio: np.ndarray, n: int) -> np.ndarray:
    """Noise with the long-term spectrum of `audio` (its magnitude, random phase)."""
    if _rms(audio) < 1e-8:
        return colored_noise(rng, n, "pink")
    reps = int(np.ceil(n / len(audio)))
    src = np.tile(audio.astype(np.float64), reps)[:n]
    mag = np.abs(np.fft.rfft(src))
    mag = np.convolve(mag, np.ones(33) / 33, mode="same")  # smooth: no pitch harmonics
    phase = rng.uniform(0, 2 * np.pi, len(mag))
    out = np.fft.irfft(mag * np.exp(1j * phase), n)
    return out / (_rms(out) + 1e-12)


def babble(rng: np.random.Generator, audio: np.ndarray, n: int) -> np.ndarray:
    """Crowd-like noise: 3-7 'talkers', each a chain of 40-300 ms pieces cut from random places
    of `audio` (some reversed), laid over speech-shaped noise. Unit RMS."""
    if len(audio) < SAMPLE_RATE // 10 or _rms(audio) < 1e-8:
        return _speech_shaped_noise(rng, audio, n)
    src = audio.astype(np.float64)
    out = np.zeros(n)
    fade = 64
    ramp = np.linspace(0, 1, fade)
    for _ in range(int(rng.integers(3, 8))):
        talker = np.zeros(n)
        pos = int(rng.integers(-SAMPLE_RATE // 5, 1))
        gain = 10 ** (rng.uniform(-8, 0) / 20)
        while pos < n:
            length = int(rng.integers(SAMPLE_RATE * 40 // 1000, SAMPLE_RATE * 300 // 1000))
            length = min(length, len(src))
            start = int(rng.integers(0, len(src) - length + 1))
            piece = src[start : start + length].copy()
            if rng.random() < 0.3:
                piece = piece[::-1]
            if length > 2 * fade:
                piece[:fade] *= ramp
                piece[-fade:] *= ramp[::-1]
            a, b = max(pos, 0), min(pos + length, n)
            if b > a:
                talker[a:b] += piece[a - pos : b - pos]
            pos += length - fade
        out += gain * talker / (_active_rms(talker) + 1e-12)
    out = out / (_rms(out) + 1e-12) + 10 ** (rng.uniform(-20, -6) / 20) * _speech_shaped_noise(rng, audio, n)
    return out / (_rms(out) + 1e-12)


def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """Synthetic RIR: a unit direct path at sample 0, then (after a 1-10 ms gap) exponentially
    decaying noise whose high frequencies die faster, scaled so that direct/reverberant energy
    is `drr_db`."""
    n = max(int(rt60 * SAMPLE_RATE), 64)
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.standard_normal(n)
    dark = _zero_phase(noise, 2, rng.uniform(1500, 4000), "lowpass")  # air absorption
    mix = np.clip(t / rt60 * rng.uniform(0.8, 2.0), 0, 1)
    tail = ((1 - mix) * noise + mix * dark) * np.exp(-6.9078 * t / rt60)
    gap = int(rng.uniform(0.001, 0.010) * SAMPLE_RATE)
    tail[: gap + 1] = 0.0
    # a few discrete early reflections
    for _ in range(int(rng.integers(2, 7))):
        k = int(rng.uniform(gap + 1, min(n - 1, gap + 0.04 * SAMPLE_RATE)))
        tail[k] += rng.choice([-1, 1]) * rng.uniform(0.2, 0.7) * np.exp(-6.9078 * t[k] / rt60)
    energy = float(np.sum(tail**2))
    tail *= np.sqrt(10 ** (-drr_db / 10) / (energy + 1e-12))
    h = tail
    h[0] = 1.0
    return h


def reverb(
    audio: np.ndarray, rng: np.random.Generator, rt60: float | None = None, drr_db: float | None = None
) -> np.ndarray:
    """Convolve with a synthetic RIR (RT60 0.1-0.8 s, direct/reverberant -5..+15 dB); same
    length and RMS as the input, no delay."""
    rt60 = float(rng.uniform(0.1, 0.8)) if rt60 is None else rt60
    drr_db = float(rng.uniform(-5, 15)) if drr_db is None else drr_db
    h = room_impulse_response(rng, rt60, drr_db)
    wet = fftconvolve(audio.astype(np.float64), h)[: len(audio)]
    return wet * (_rms(audio) / (_rms(wet) + 1e-12))


def mu_law(x: np.ndarray, mu: float = 255.0, bits: int = 8) -> np.ndarray:
    """G.711-style companding round trip: compress, quantize to `bits`, expand."""
    peak = max(float(np.max(np.abs(x))), 1e-9)
    y = np.sign(x) * np.log1p(mu * np.abs(x / peak)) / np.log1p(mu)
    levels = 2 ** (bits - 1)
    y = np.round(y * levels) / levels
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu * peak


def telephone(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """300-3400 Hz band, 8 kHz resampling round trip, mu-law 8-bit companding."""
    x = _zero_phase(audio, 4, [rng.uniform(250, 350), rng.uniform(3200, 3500)], "bandpass")
    x = resample_poly(resample_poly(x, 1, 2), 2, 1)[: len(audio)]
    x = np.pad(x, (0, len(audio) - len(x)))
    return mu_law(x, 255.0, 8)


def soft_clip(audio: np.ndarray, drive_db: float) -> np.ndarray:
    """tanh overdrive that keeps the peak level: quiet parts pass, loud parts flatten."""
    peak = float(np.max(np.abs(audio)))
    if peak < 1e-9:
        return audio
    g = 10 ** (drive_db / 20) / peak
    return np.tanh(g * audio) / np.tanh(g * peak) * peak


# ---------------------------------------------------------------------------------------------
# public API


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random degradation chain (see the module docstring); same length, float32, 16 kHz,
    in [-1, 1], no timing shift."""
    x = np.asarray(audio, np.float64).reshape(-1).copy()
    n = len(x)
    if n == 0:
        return np.zeros(0, np.float32)
    if rng.random() < P_REVERB:
        x = reverb(x, rng)
    if rng.random() < P_NOISE:
        kind = rng.choice(["white", "pink", "brown", "babble", "speech"], p=[0.15, 0.25, 0.15, 0.3, 0.15])
        if kind == "babble":
            noise = babble(rng, x, n)
        elif kind == "speech":
            noise = _speech_shaped_noise(rng, x, n)
        else:
            noise = colored_noise(rng, n, str(kind))
        snr_db = rng.uniform(0, 30)
        level = _active_rms(x)
        if level > 0:
            x = x + noise * level / 10 ** (snr_db / 20)
    if rng.random() < P_HIGHPASS:
        x = _zero_phase(x, int(rng.integers(1, 4)), rng.uniform(80, 300), "highpass")
    if rng.random() < P_LOWPASS:
        x = _zero_phase(x, int(rng.integers(2, 5)), rng.uniform(3000, 7500), "lowpass")
    if rng.random() < P_TELEPHONE:
        x = telephone(x, rng)
    peak = float(np.max(np.abs(x)))
    if peak > 0:  # level: the input's peak, then -20..+6 dB
        x *= max(float(np.max(np.abs(audio))), 1e-3) / peak
    if rng.random() < P_GAIN:
        x *= 10 ** (rng.uniform(-20, 6) / 20)
    if rng.random() < P_SOFTCLIP:
        x = soft_clip(x, rng.uniform(3, 20))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# sox `pitch` WSOLA settings (segment, search, overlap in ms). With sox's defaults (82 ms
# segments) the output is displaced by up to ±10 ms (later for downward shifts, earlier for
# upward); 30 ms segments cut that to ±4 ms, and the rest is removed with the measured
# displacement below (envelope cross-correlation over 12 espeak and Piper sentences:
# ≈ -sign(cents) · (1.3 + 0.0065·|cents|) ms; residual median within ±1 ms, ±25..±400 cents).
_SOX_WSOLA = ("30", "8", "6")


def _sox_pitch_lag_samples(cents: float) -> int:
    lag_ms = -np.sign(cents) * (1.3 + 0.0065 * abs(cents))
    return int(round(lag_ms * SAMPLE_RATE / 1000))


def _sox(x: np.ndarray, *effect: str) -> np.ndarray:
    """Run one sox effect over float32 16 kHz mono (6 dB headroom: sox clips at full scale)."""
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError(
            "pitch_shift and tempo need the `sox` program (apt-get install sox; models/setup_corpus_tools.sh)"
        )
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(SAMPLE_RATE)]
    result = subprocess.run(
        [sox, "-V1", "-D", *raw, "-", *raw, "-", *effect],
        input=(0.5 * x).astype("<f4").tobytes(),
        capture_output=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"sox {effect[0]} failed: {result.stderr.decode(errors='replace')[-300:]}")
    return 2.0 * np.frombuffer(result.stdout, "<f4").astype(np.float64)


def pitch_shift(audio: np.ndarray, cents: float) -> np.ndarray:
    """Shift pitch by `cents` keeping length and timing: sox's ``pitch`` effect (WSOLA tempo
    change + resampling; ``apt-get install sox``) with 30 ms segments, its small displacement
    compensated (see ``_SOX_WSOLA``)."""
    x = np.asarray(audio, np.float32).reshape(-1)
    if abs(cents) < 1e-6 or len(x) == 0:
        return x.copy()
    y = _sox(x, "pitch", f"{cents:.2f}", *_SOX_WSOLA)
    lag = _sox_pitch_lag_samples(cents)
    if lag > 0:  # output late: drop its first samples
        y = y[lag:]
    elif lag < 0:  # output early: delay it
        y = np.concatenate([np.zeros(-lag), y])
    y = np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def tempo(audio: np.ndarray, factor: float) -> np.ndarray:
    """Speak `factor` times faster at the same pitch (sox ``tempo -s``, WSOLA with 30 ms
    segments): the output lasts len / factor, so phoneme times scale by 1 / factor."""
    x = np.asarray(audio, np.float32).reshape(-1)
    if abs(factor - 1.0) < 1e-6 or len(x) == 0:
        return x.copy()
    y = _sox(x, "tempo", "-s", f"{factor:.4f}", *_SOX_WSOLA)
    n = int(round(len(x) / factor))
    return np.clip(np.pad(y, (0, max(0, n - len(y))))[:n], -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# negatives


def _envelope(n: int, attack: float, release: float) -> np.ndarray:
    """Rise over `attack` of the length, fall over `release` (raised-cosine edges)."""
    env = np.ones(n)
    a, r = max(1, int(n * attack)), max(1, int(n * release))
    env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    env[n - r :] = np.minimum(env[n - r :], 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r)))
    return env


def _breath(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.uniform(0.25, 0.9) * SAMPLE_RATE)
    noise = colored_noise(rng, n, str(rng.choice(["white", "pink"])))
    x = _zero_phase(noise, 2, [rng.uniform(300, 900), rng.uniform(2500, 6000)], "bandpass")
    # a formant-ish resonance or two (the vocal tract shapes breath noise)
    for _ in range(int(rng.integers(1, 3))):
        f = rng.uniform(600, 2500)
        x = x + rng.uniform(0.3, 1.0) * _zero_phase(noise, 2, [f * 0.85, f * 1.15], "bandpass")
    inhale = rng.random() < 0.6
    x *= _envelope(n, rng.uniform(0.2, 0.6) if inhale else 0.1, rng.uniform(0.2, 0.5) if inhale else 0.6)
    return x / (_rms(x) + 1e-12)


def _click(rng: np.random.Generator) -> np.ndarray:
    """Tongue/lip clicks, finger taps, knocks: short decaying resonances or noise ticks."""
    n = int(rng.uniform(0.005, 0.08) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if rng.random() < 0.5:  # resonant tap / knock
        x = np.zeros(n)
        for _ in range(int(rng.integers(1, 4))):
            f = rng.uniform(150, 4000)
            x += (
                rng.uniform(0.3, 1)
                * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
                * np.exp(-t / rng.uniform(0.002, 0.03))
            )
    else:  # broadband tick
        x = rng.standard_normal(n) * np.exp(-t / rng.uniform(0.0005, 0.01))
        x = _zero_phase(x, 2, rng.uniform(500, 3000), "highpass")
    return x / (np.max(np.abs(x)) + 1e-12)


_CHORDS = ([0, 4, 7], [0, 3, 7], [0, 4, 7, 11], [0, 5, 9], [0, 7, 12], [0, 3, 7, 10])


def _music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Notes and chords with harmonics, ADSR envelopes, some vibrato; a melody over time."""
    out = np.zeros(n)
    pos = 0
    root = rng.uniform(45, 70)  # MIDI
    brightness = rng.uniform(0.5, 1.5)
    while pos < n:
        dur = int(rng.uniform(0.12, 1.2) * SAMPLE_RATE)
        m = min(dur + SAMPLE_RATE // 5, n - pos)
        t = np.arange(m) / SAMPLE_RATE
        chord = [0] if rng.random() < 0.4 else _CHORDS[int(rng.integers(0, len(_CHORDS)))]
        base = root + rng.choice([-5, -3, 0, 2, 4, 5, 7, 9, 12])
        note = np.zeros(m)
        for step in chord:
            f0 = 440 * 2 ** ((base + step - 69) / 12)
            vib = 1 + (rng.uniform(0, 0.006) * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
            phase = 2 * np.pi * f0 * np.cumsum(vib) / SAMPLE_RATE
            for k in range(1, 12):
                if f0 * k > NYQUIST * 0.95:
                    break
                note += np.sin(k * phase) / k ** (2.0 / brightness) * (1.0 if k == 1 else rng.uniform(0.3, 1.0))
        attack = rng.uniform(0.002, 0.08)
        decay = rng.uniform(0.2, 2.0)
        env = np.minimum(t / attack, 1.0) * np.exp(-t / decay) if rng.random() < 0.6 else _envelope(m, 0.05, 0.2)
        out[pos : pos + m] += note * env
        pos += dur
    return out / (_rms(out) + 1e-12)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50/60 Hz and harmonics) or a fan/HVAC drone."""
    t = np.arange(n) / SAMPLE_RATE
    if rng.random() < 0.6:
        f0 = rng.choice([50.0, 60.0]) * rng.uniform(0.998, 1.002)
        x = sum(rng.uniform(0, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) for k in range(1, 9))
    else:
        x = _zero_phase(colored_noise(rng, n, "brown"), 2, rng.uniform(150, 600), "lowpass")
        x = x + 0.3 * np.sin(2 * np.pi * rng.uniform(80, 300) * t)
    return x / (_rms(x) + 1e-12)


def _door(rng: np.random.Generator) -> np.ndarray:
    """Door slam / thump / footsteps / chair scrape: low-passed noise bursts with long decays."""
    kind = rng.integers(0, 3)
    if kind == 0:  # slam: thump + rattle
        n = int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        x = _zero_phase(rng.standard_normal(n), 2, rng.uniform(100, 500), "lowpass") * np.exp(
            -t / rng.uniform(0.05, 0.25)
        )
        x += 0.2 * _zero_phase(rng.standard_normal(n), 2, [800, 4000], "bandpass") * np.exp(-t / rng.uniform(0.02, 0.1))
    elif kind == 1:  # footsteps
        n = int(rng.uniform(1.0, 2.5) * SAMPLE_RATE)
        x = np.zeros(n)
        step = int(rng.uniform(0.4, 0.7) * SAMPLE_RATE)
        for start in range(int(rng.integers(0, step)), n - 1, step):
            m = min(int(0.12 * SAMPLE_RATE), n - start)
            t = np.arange(m) / SAMPLE_RATE
            x[start : start + m] += _zero_phase(rng.standard_normal(m), 2, rng.uniform(200, 900), "lowpass") * np.exp(
                -t / 0.025
            )
    else:  # scrape / rustle
        n = int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
        x = _zero_phase(
            colored_noise(rng, n, "white"), 2, [rng.uniform(200, 1500), rng.uniform(2000, 7000)], "bandpass"
        )
        x *= np.abs(np.sin(np.linspace(0, np.pi * rng.uniform(1, 6), n))) ** 2
    return x / (np.max(np.abs(x)) + 1e-12)


def negatives(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """`seconds` of non-speech (every frame should map to a closed / resting mouth): a noise
    floor (-75..-45 dBFS) plus, at random, breaths, clicks/taps, music-like tones and chords,
    hum, door/footstep/scrape noises; sometimes in a reverberant room. 16 kHz float32."""
    n = int(round(seconds * SAMPLE_RATE))
    if n <= 0:
        return np.zeros(0, np.float32)
    db = lambda lo, hi: 10 ** (rng.uniform(lo, hi) / 20)  # noqa: E731
    x = colored_noise(rng, n, str(rng.choice(["white", "pink", "brown"]))) * db(-75, -45)
    if rng.random() < 0.35:
        x += _hum(rng, n) * db(-55, -25)
    if rng.random() < 0.35:
        x += _music(rng, n) * db(-40, -12)

    def place(sound: np.ndarray, level: float) -> None:
        m = min(len(sound), n)
        start = int(rng.integers(0, n - m + 1))
        x[start : start + m] += sound[:m] * level

    events_per_s = rng.uniform(0.0, 2.5)
    for _ in range(int(rng.poisson(events_per_s * seconds))):
        kind = rng.choice(["breath", "click", "door"], p=[0.5, 0.3, 0.2])
        if kind == "breath":
            place(_breath(rng), db(-50, -22))
        elif kind == "click":
            place(_click(rng), db(-40, -8))
        else:
            place(_door(rng), db(-35, -6))
    if rng.random() < 0.3:
        x = reverb(x, rng)
    peak = float(np.max(np.abs(x)))
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32)
