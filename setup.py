"""Builds kwstool._native from the firmware's portable C sources (one source of truth).

The front end's hash (:mod:`kwstool.core.srchash`) is computed here and compiled in as
``KWS_FRONTEND_HASH``, so the extension states which front-end sources it was built from.
"""

import importlib.util
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
LIBS = [
    "firmware/lib/kws_frontend",
    "firmware/lib/kws_recognizer",
    "firmware/lib/kws_feature_provider",
]


def _frontend_hash() -> str:
    spec = importlib.util.spec_from_file_location("_srchash", HERE / "kwstool/core/srchash.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.frontend_hash(HERE))


sources = ["kwstool/_native.c"]
depends = []
for lib in LIBS:
    sources += sorted(str(p.relative_to(HERE)) for p in (HERE / lib).glob("*.c"))
    depends += sorted(str(p.relative_to(HERE)) for p in (HERE / lib).glob("*.h"))

setup(
    ext_modules=[
        Extension(
            "kwstool._native",
            sources=sources,
            depends=depends,
            include_dirs=LIBS,
            define_macros=[("KWS_FRONTEND_HASH", f'"{_frontend_hash()}"')],
            extra_compile_args=["-std=c99", "-O3", "-Wall", "-Wextra"],
        )
    ]
)
