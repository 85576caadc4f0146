"""The front-end hash: SHA-256 of the C front end's sources (code and parameters).

``setup.py`` loads this file on its own (before ``kwstool._native`` exists) and compiles the hash
into the extension as ``FRONTEND_HASH``; :mod:`kwstool.core.contract` exposes it and every
artifact that holds features (prepared data, run config, quantize report) records it. A test
recomputes it from the checkout to catch an extension built from other sources. Standard library
only, so that it loads without the rest of the package.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: The front end's folder, relative to the repository root.
FRONTEND_DIR = "firmware/lib/kws_frontend"


def frontend_files(root: Path) -> list[Path]:
    """The ``.c`` and ``.h`` files of the front end under the repository ``root``, sorted."""
    folder = root / FRONTEND_DIR
    return sorted(p for p in folder.iterdir() if p.suffix in (".c", ".h") and p.is_file())


def frontend_hash(root: Path) -> str:
    """Hex SHA-256 over the front end's file names and contents (line endings normalised)."""
    files = frontend_files(root)
    if not files:
        raise FileNotFoundError(f"{root / FRONTEND_DIR}: no front-end sources")
    digest = hashlib.sha256()
    for path in files:
        data = path.read_bytes().replace(b"\r\n", b"\n")
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
