#!/usr/bin/env python3
"""Generate kwstool's offline demo dataset (``datasets/demo``) from synthesized speech and noise.

The demo lets ``kwstool run`` work on a fresh clone with no network. Everything in it is produced
here: words spoken by Debian's ``espeak-ng`` in many voice/variant/speed/pitch combinations, and
background noise generated with numpy. Layout (the Speech Commands folder-per-label layout that
``kwstool prepare`` reads)::

    datasets/demo/
      yes/<speaker>_nohash_<n>.wav      keywords
      no/...
      up/ down/ left/ right/ ...        other words: the model's _unknown_ class
      _background_noise_/*.wav          noise for silence clips and augmentation
      README.md                         how it was made, licence

A "speaker" is one espeak-ng voice (accent) with one variant (timbre), named by a short hash so
``prepare`` can split speakers disjointly. Each clip is 16 kHz mono 16-bit PCM holding the word
after a short random lead-in, cut shortly after the word ends (shorter than 1 s; the loader pads
with silence) to keep the dataset under 10 MB.

Usage: ``python scripts/make_demo_dataset.py [--out datasets/demo] [--seed 0]``. The output is
deterministic for a given espeak-ng version and seed. Needs ``espeak-ng`` on PATH
(``apt-get install espeak-ng``), numpy and scipy.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import lfilter, resample_poly

RATE = 16000
KEYWORDS = ["yes", "no"]
UNKNOWN_WORDS = ["up", "down", "left", "right", "go", "stop", "on", "off"]
#: espeak-ng accents (language voices shipped with Debian's espeak-ng-data).
VOICES = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
]
#: espeak-ng variants (timbres): male, female and a few characterful ones.
VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "Andy",
    "Annie",
    "Alex",
    "Michael",
    "david",
    "linda",
    "steph",
    "quincy",
    "rob",
    "paul",
]
SPEAKERS = 84  # voice x variant pairs used, drawn with the seed
TAKES_PER_KEYWORD = 2  # each speaker says each keyword this often (different speed/pitch)
UNKNOWN_PER_SPEAKER = 1
NOISE_SECONDS = 10
LICENCE = "CC0-1.0"


def synthesize(text: str, voice: str, speed: int, pitch: int, tmp: Path) -> np.ndarray:
    """One utterance from espeak-ng as float samples at 16 kHz."""
    out = tmp / "say.wav"
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rate, data = wavfile.read(out)
    x = data.astype(np.float64) / 32768.0
    if x.ndim == 2:
        x = x.mean(axis=1)
    g = gcd(rate, RATE)
    resampled: np.ndarray = resample_poly(x, RATE // g, rate // g)
    return resampled


def trim(x: np.ndarray, margin_s: float = 0.02, rel_threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing near-silence, keeping a small margin."""
    loud = np.flatnonzero(np.abs(x) > rel_threshold * max(np.abs(x).max(), 1e-9))
    if len(loud) == 0:
        return x[:0]
    m = int(margin_s * RATE)
    return x[max(0, loud[0] - m) : loud[-1] + m]


def clip(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A clip: random lead-in (50..250 ms of silence), the word at a random level, <= 1 s."""
    lead = np.zeros(int(rng.uniform(0.05, 0.25) * RATE))
    level = rng.uniform(0.25, 0.8) / max(np.abs(word).max(), 1e-9)
    y = np.concatenate([lead, word * level])[:RATE]
    return np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)


def noise(kind: str, rng: np.random.Generator, seconds: int) -> np.ndarray:
    """Background noise as int16: white, pink (1/f), brown (1/f^2) or mains hum with a fan hiss."""
    n = seconds * RATE
    w = rng.standard_normal(n)
    if kind == "white":
        x = w
    elif kind == "pink":  # standard 1/f filter (J. O. Smith, "Spectral Audio Signal Processing")
        b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
        a = [1, -2.494956002, 2.017265875, -0.522189400]
        x = lfilter(b, a, w)
    elif kind == "brown":
        x = lfilter([1.0], [1.0, -0.995], w)
    elif kind == "hum":
        t = np.arange(n) / RATE
        x = sum(
            (np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3, 5)),
            np.zeros(n),
        )
        x = x + 0.3 * lfilter([1.0], [1.0, -0.9], w) / 3
    else:
        raise ValueError(kind)
    x = x / np.sqrt(np.mean(x**2)) * 0.08  # about -22 dBFS RMS
    out: np.ndarray = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    return out


def speaker_id(voice: str, variant: str) -> str:
    return hashlib.sha1(f"{voice}+{variant}".encode()).hexdigest()[:8]


README = """# kwstool demo dataset

A small keyword-spotting dataset that ships with kwstool so that `kwstool run` works offline on a
fresh clone. It is **synthetic**: good for checking the pipeline end to end, not for a model you
deploy (train on real speech, e.g. Speech Commands, for that).

## Contents

| folder | clips | what |
|---|---:|---|
{table}

- {speakers} "speakers": an espeak-ng accent voice combined with a variant (timbre), each named
  by the first 8 hex digits of SHA-1 of `voice+variant` (files are `<speaker>_nohash_<n>.wav`,
  the Speech Commands convention, so `kwstool prepare` splits speakers disjointly).
- Keywords `{keywords}`: each speaker says each one {takes} times, at different speeds
  (130..210 words per minute) and pitches (20..80).
- Other words `{unknown}`: {unknown_per} per speaker, drawn at random; they form the
  `_unknown_` class.
- Clips are 16 kHz mono 16-bit PCM WAV, a 50..250 ms silent lead-in, the word at a random level,
  cut 20 ms after the word (shorter than 1 s; kwstool pads clips with silence to 1 s).
- `_background_noise_/`: {noise_seconds} s each of white, pink, brown noise and mains hum with a
  fan hiss, generated with numpy (about -22 dBFS RMS). `prepare` cuts `_silence_` clips from them
  and training mixes them in as augmentation.
- Total size: {size_kb} KB.

## How it was made

```
python scripts/make_demo_dataset.py --out datasets/demo --seed {seed}
```

with {espeak} (Debian package `espeak-ng`), numpy and scipy. The script is deterministic
for a given espeak-ng version and seed.

## Licence

{licence}. All audio here is generated by the script above: speech synthesized by espeak-ng
(the program is GPL-3.0; its licence covers the program, not audio it outputs) and noise from a
seeded random generator. No recordings of people are included. The kwstool authors dedicate
this dataset to the public domain under CC0 1.0
(https://creativecommons.org/publicdomain/zero/1.0/).
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_out = Path(__file__).resolve().parents[1] / "datasets" / "demo"
    ap.add_argument("--out", type=Path, default=default_out)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print(
            "error: espeak-ng not found; install it with `apt-get install espeak-ng`",
            file=sys.stderr,
        )
        return 2
    version = subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True
    ).stdout.strip()
    version = "espeak-ng " + version.split("  ")[0].rsplit(":", 1)[-1].strip()  # e.g. 1.51
    rng = np.random.default_rng(args.seed)

    out: Path = args.out
    stage = Path(tempfile.mkdtemp(prefix=".demo.", dir=out.parent if out.parent.exists() else None))
    pairs = [(v, var) for v in VOICES for var in VARIANTS]
    chosen = [pairs[i] for i in sorted(rng.choice(len(pairs), SPEAKERS, replace=False))]
    counts: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for voice, variant in chosen:
                spk = speaker_id(voice, variant)
                jobs = [(w, k) for w in KEYWORDS for k in range(TAKES_PER_KEYWORD)]
                others = rng.choice(UNKNOWN_WORDS, UNKNOWN_PER_SPEAKER, replace=False)
                jobs += [(w, 0) for w in others]
                for word, take in jobs:
                    speed = int(rng.integers(130, 211))
                    pitch = int(rng.integers(20, 81))
                    x = trim(synthesize(str(word), f"{voice}+{variant}", speed, pitch, Path(tmp)))
                    if len(x) < 0.1 * RATE:
                        continue  # espeak produced next to nothing; skip rather than store junk
                    folder = stage / str(word)
                    folder.mkdir(parents=True, exist_ok=True)
                    wavfile.write(folder / f"{spk}_nohash_{take}.wav", RATE, clip(x, rng))
                    counts[str(word)] = counts.get(str(word), 0) + 1
        noise_dir = stage / "_background_noise_"
        noise_dir.mkdir()
        for kind in ("white", "pink", "brown", "hum"):
            wavfile.write(noise_dir / f"{kind}_noise.wav", RATE, noise(kind, rng, NOISE_SECONDS))
        size = sum(p.stat().st_size for p in stage.rglob("*.wav"))
        rows = [f"| `{w}/` | {counts.get(w, 0)} | keyword |" for w in KEYWORDS]
        rows += [
            f"| `{w}/` | {counts.get(w, 0)} | other word (`_unknown_`) |" for w in UNKNOWN_WORDS
        ]
        rows.append(f"| `_background_noise_/` | 4 | noise recordings, {NOISE_SECONDS} s each |")
        (stage / "README.md").write_text(
            README.format(
                table="\n".join(rows),
                speakers=len(chosen),
                keywords=",".join(KEYWORDS),
                takes=TAKES_PER_KEYWORD,
                unknown=",".join(UNKNOWN_WORDS),
                unknown_per=UNKNOWN_PER_SPEAKER,
                noise_seconds=NOISE_SECONDS,
                size_kb=(size + 1023) // 1024,
                seed=args.seed,
                espeak=version,
                licence=LICENCE,
            )
        )
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"wrote {out}: {sum(counts.values())} clips, {len(chosen)} speakers, {total / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
