"""Training-time augmentation through the board's own front end (see kwstool.model.train).

Per clip, in this order: optional speed perturbation, a random time shift (zero filled),
background noise at a random volume (always for ``_silence_`` clips), the C front end to int8
features, optional SpecAugment masks. :meth:`Augmenter.chunks` yields the features of
``AUGMENT_CHUNK`` clips at a time so the working memory stays bounded however many clips there
are (the audio may be a memory-mapped array); all randomness comes from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from kwstool.core.contract import SAMPLE_RATE, SHAPE

FREQ_MASK_MAX = 5  # mel channels, SpecAugment's F
TIME_MASK_MAX = 5  # frames (100 ms), SpecAugment's T
AUGMENT_CHUNK = 512  # clips per augmentation step (bounds the float32 working memory)


# --- augmentation --------------------------------------------------------------------------------
def noise_list(
    noise: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None,
) -> list[np.ndarray]:
    """Background-noise recordings as a list of 1-D int16 arrays (dict values in key order)."""
    if noise is None:
        return []
    items = [noise[k] for k in sorted(noise)] if isinstance(noise, Mapping) else list(noise)
    return [np.asarray(a, dtype=np.int16).reshape(-1) for a in items if np.size(a) > 0]


class Augmenter:
    """Per-epoch augmented features of the training clips (see the module documentation)."""

    def __init__(
        self,
        audio: np.ndarray,
        labels: np.ndarray,
        noise: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None,
        silence_index: int | None,
        noise_prob: float,
        noise_volume: float,
        time_shift_ms: float,
        spec_augment: bool,
        speed_perturb: float = 0.0,
        sample_rate: int = SAMPLE_RATE,
        threads: int | None = None,
    ) -> None:
        self.threads = threads
        self.audio = audio
        self.labels = np.asarray(labels)
        self.noise = noise_list(noise)
        self.silence = (
            (self.labels == silence_index)
            if silence_index is not None
            else np.zeros(len(self.labels), dtype=bool)
        )
        self.noise_prob = float(noise_prob)
        self.noise_volume = float(noise_volume)
        self.max_shift = round(time_shift_ms * sample_rate / 1000.0)
        self.spec_augment = bool(spec_augment)
        self.speed_perturb = float(speed_perturb)

    def _speed(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Play each clip faster or slower by a factor drawn from 1 +- speed_perturb (pitch moves
        with it, as in Kaldi's speed perturbation), stretched about the clip's centre; samples
        beyond the original clip are zeros. Linear interpolation."""
        n, length = clips.shape
        rates = rng.uniform(1.0 - self.speed_perturb, 1.0 + self.speed_perturb, size=int(n))
        centre = (length - 1) / 2.0
        grid = np.arange(length, dtype=np.float64)
        out = np.empty((n, length), dtype=np.float32)
        for i, rate in enumerate(rates):
            out[i] = np.interp(centre + (grid - centre) * rate, grid, clips[i], left=0.0, right=0.0)
        return out

    def _shift(self, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Shift each clip by a uniform -max_shift..max_shift samples, filling with zeros."""
        if self.max_shift <= 0:
            return clips.astype(np.float32)
        n, length = clips.shape
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=int(n))
        out = np.zeros((n, length), dtype=np.float32)
        for i, s in enumerate(shifts):
            if s >= 0:
                out[i, s:] = clips[i, : length - s]
            else:
                out[i, : length + s] = clips[i, -s:]
        return out

    def _mix_noise(self, x: np.ndarray, silence: np.ndarray, rng: np.random.Generator) -> None:
        """Add a random noise slice to the chosen clips of ``x`` (float32, in place)."""
        n, length = x.shape
        use = (rng.random(n) < self.noise_prob) | silence
        volume = np.where(silence, rng.uniform(0.0, 1.0, n), rng.uniform(0.0, self.noise_volume, n))
        which = rng.integers(0, len(self.noise), size=int(n))
        starts = rng.random(int(n))
        for i in np.flatnonzero(use):
            rec = self.noise[which[i]]
            if len(rec) < length:  # short recording: repeat it to a full clip
                rec = np.tile(rec, length // len(rec) + 1)
            start = int(starts[i] * (len(rec) - length + 1))
            x[i] += volume[i] * rec[start : start + length]

    def _mask(self, feats: np.ndarray, rng: np.random.Generator) -> None:
        """SpecAugment: one frequency band and one time span per clip set to the clip mean."""
        n, frames, channels = feats.shape
        fill = feats.reshape(n, -1).mean(axis=1)
        f_width = rng.integers(0, FREQ_MASK_MAX + 1, size=int(n))
        f_start = (rng.random(n) * (channels - f_width + 1)).astype(int)
        t_width = rng.integers(0, TIME_MASK_MAX + 1, size=int(n))
        t_start = (rng.random(n) * (frames - t_width + 1)).astype(int)
        for i in range(n):
            feats[i, :, f_start[i] : f_start[i] + f_width[i]] = fill[i]
            feats[i, t_start[i] : t_start[i] + t_width[i], :] = fill[i]

    def augment(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Int8 features ``(len(idx), 49, 40)`` of freshly augmented clips ``idx``."""
        from kwstool.core import frontend

        x = read_rows(self.audio, idx)
        if self.speed_perturb > 0:
            x = self._speed(x, rng)
        x = self._shift(x, rng)
        if self.noise:
            self._mix_noise(x, self.silence[idx], rng)
        clips = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
        return frontend.compute(clips, threads=self.threads)

    def chunk(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Float32 features ``(len(idx), 49, 40)`` of clips ``idx``: augmented, then masked."""
        feats = self.augment(idx, rng).astype(np.float32)
        if self.spec_augment:
            self._mask(feats, rng)
        return feats

    def chunks(
        self,
        rng: np.random.Generator,
        order: np.ndarray | None = None,
        size: int = AUGMENT_CHUNK,
    ) -> Iterator[np.ndarray]:
        """:meth:`chunk` of the clips in ``order`` (default: all), ``size`` clips at a time."""
        order = np.arange(len(self.labels)) if order is None else np.asarray(order)
        for start in range(0, len(order), size):
            yield self.chunk(order[start : start + size], rng)

    def features(self, rng: np.random.Generator, order: np.ndarray | None = None) -> np.ndarray:
        """Float32 model inputs ``(N, 49, 40, 1)`` of freshly augmented clips, in ``order``
        (all at once: for small data and tests; training streams :meth:`chunks`)."""
        n = len(self.labels) if order is None else len(order)
        out = np.empty((n, *SHAPE, 1), dtype=np.float32)
        start = 0
        for feats in self.chunks(rng, order):
            out[start : start + len(feats), ..., 0] = feats
            start += len(feats)
        return out


def read_rows(audio: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``audio``. A memory-mapped ``.npy`` is read with plain file reads, so the
    rows land in the page cache but not in this process's resident memory (touching the map
    would count every clip of an epoch towards RSS)."""
    if not (isinstance(audio, np.memmap) and audio.filename and audio.ndim == 2
            and audio.flags.c_contiguous):  # fmt: skip
        return np.asarray(audio[idx])
    row_bytes = audio.shape[1] * audio.itemsize
    out = np.empty((len(idx), audio.shape[1]), dtype=audio.dtype)
    with open(audio.filename, "rb", buffering=0) as fh:
        for k in np.argsort(idx, kind="stable"):  # ascending offsets
            fh.seek(audio.offset + int(idx[k]) * row_bytes)
            if fh.readinto(memoryview(out[k]).cast("B")) != row_bytes:
                raise OSError(f"{audio.filename}: short read at row {int(idx[k])}")
    return out


def class_weights(labels: np.ndarray, num_labels: int) -> np.ndarray:
    """Per-label loss weights ``N / (num_labels_present * count)`` (1.0 for balanced data)."""
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_labels, dtype=np.float32)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights
