"""Builds kwstool._native from the firmware's portable C sources (one source of truth)."""

from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
LIBS = ["firmware/lib/kws_frontend", "firmware/lib/kws_recognizer", "firmware/lib/kws_feature_provider"]
sources = ["kwstool/_native.c"]
for lib in LIBS:
    sources += sorted(str(p.relative_to(HERE)) for p in (HERE / lib).glob("*.c"))

setup(
    ext_modules=[
        Extension(
            "kwstool._native",
            sources=sources,
            include_dirs=LIBS,
            extra_compile_args=["-std=c99", "-O3", "-Wall", "-Wextra"],
        )
    ]
)
