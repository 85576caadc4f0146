"""Block-wise resampling of a live stream to 16 kHz (for microphones that cannot do 16 kHz).

:class:`BlockResampler` gives, block by block, what :func:`scipy.signal.resample_poly` gives
for the whole signal: input is processed in spans of whole ``down`` periods with ``margin``
input samples of context on each side (more than the filter's half length), so every output
sample sees the same input as in one whole-signal call. The price is ``margin`` samples of
delay (a few ms).
"""

from __future__ import annotations

import math

import numpy as np


class BlockResampler:
    """Resample int16 blocks from ``rate_in`` to ``rate_out`` with a fixed small delay."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        g = math.gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        half = 10 * max(self.up, self.down) // self.up + 2  # resample_poly's filter, in inputs
        self.margin = -(-half // self.down) * self.down
        self._buf = np.zeros(self.margin, np.float64)  # the stream starts with zero context
        self._done = 0  # input samples of _buf already turned into output (after the margin)

    def process(self, block: np.ndarray) -> np.ndarray:
        from scipy.signal import resample_poly

        self._buf = np.concatenate([self._buf, np.asarray(block, np.float64) / 32768.0])
        ready = (len(self._buf) - 2 * self.margin) // self.down * self.down
        if ready <= 0:
            return np.zeros(0, np.int16)
        seg = self._buf[: ready + 2 * self.margin]
        y = resample_poly(seg, self.up, self.down)
        skip = self.margin * self.up // self.down
        out = y[skip : skip + ready * self.up // self.down]
        self._buf = self._buf[ready:]
        result: np.ndarray = np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)
        return result
