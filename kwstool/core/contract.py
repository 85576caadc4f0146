"""The feature contract, read from the C front end that defines it (one source of truth).

``firmware/lib/kws_frontend/kws_frontend.h`` defines the sample rate, window, stride, channel
count and clip length; ``kwstool._native`` (compiled from that header) exposes them and this
module names them for the rest of the package. Nothing else in ``kwstool/`` types these numbers.

:data:`FRONTEND_HASH` is the SHA-256 of the front end's C sources (code and parameters),
computed by ``setup.py`` (:mod:`kwstool.core.srchash`) and compiled into ``_native``. Every
artifact holding features records it; one recorded with another hash is refused.
"""

from __future__ import annotations

try:
    from kwstool import _native
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "kwstool._native is not built; run `pip install -e .` in the kwstool checkout"
    ) from exc

SAMPLE_RATE: int = _native.SAMPLE_RATE
WINDOW_SAMPLES: int = _native.WINDOW_SAMPLES
STRIDE_SAMPLES: int = _native.STRIDE_SAMPLES
WINDOW_MS: int = _native.WINDOW_MS
STRIDE_MS: int = _native.STRIDE_MS
NUM_CHANNELS: int = _native.NUM_CHANNELS
#: Frames of one clip: the model's input window.
NUM_FRAMES: int = _native.CLIP_FRAMES
#: Samples of one clip (one second).
CLIP_SAMPLES: int = _native.CLIP_SAMPLES
#: Shape of one clip's features: (time frames, mel channels).
SHAPE: tuple[int, int] = (NUM_FRAMES, NUM_CHANNELS)
#: SHA-256 (hex) of ``firmware/lib/kws_frontend/*.c|h`` that ``_native`` was built from.
FRONTEND_HASH: str = _native.FRONTEND_HASH
