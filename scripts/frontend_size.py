#!/usr/bin/env python3
"""Flash and RAM cost of the C front end on a Cortex-M4F (Nano 33 BLE's nRF52840).

Compiles firmware/lib/kws_frontend with arm-none-eabi-gcc (-mcpu=cortex-m4 -mfpu=fpv4-sp-d16
-mfloat-abi=hard -Os) and prints .text/.data/.bss bytes per file and in total, plus
sizeof(kws_frontend_state) (the caller-owned state, scratch included). Goals: text <= 8 KB
(tables included), state <= 4 KB.

    python scripts/frontend_size.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIB = REPO / "firmware/lib/kws_frontend"
CC = "arm-none-eabi-gcc"
FLAGS = [
    "-std=c99",
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfpu=fpv4-sp-d16",
    "-mfloat-abi=hard",
    "-Os",
    "-ffunction-sections",
    "-fdata-sections",
    "-Wall",
    "-Wextra",
    "-Werror",
]


def state_bytes(tmp: Path) -> int:
    """sizeof(kws_frontend_state) for the target, read from a compiled constant."""
    probe = tmp / "probe.c"
    probe.write_text(
        '#include "kws_frontend.h"\nconst unsigned kws_state_size = sizeof(kws_frontend_state);\n'
    )
    obj = tmp / "probe.o"
    subprocess.run([CC, *FLAGS, "-I", str(LIB), "-c", str(probe), "-o", str(obj)], check=True)
    dump = subprocess.run(
        ["arm-none-eabi-objdump", "-s", "-j", ".rodata.kws_state_size", str(obj)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(ln for ln in dump.splitlines() if ln.strip().startswith("0000"))
    return int.from_bytes(bytes.fromhex(line.split()[1]), "little")


def main() -> int:
    if shutil.which(CC) is None:
        print(
            f"error: {CC} not found; install it with `apt-get install gcc-arm-none-eabi "
            f"libnewlib-arm-none-eabi`",
            file=sys.stderr,
        )
        return 2
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        objs = []
        for src in sorted(LIB.glob("*.c")):
            obj = tmp / (src.stem + ".o")
            subprocess.run([CC, *FLAGS, "-I", str(LIB), "-c", str(src), "-o", str(obj)], check=True)
            objs.append(obj)
        out = subprocess.run(
            ["arm-none-eabi-size", *map(str, objs)], check=True, capture_output=True, text=True
        ).stdout
        print(f"{'file':28s} {'text':>7s} {'data':>7s} {'bss':>7s}")
        for line in out.splitlines()[1:]:
            text, data, bss, *_rest, name = line.split()
            totals = [totals[0] + int(text), totals[1] + int(data), totals[2] + int(bss)]
            print(f"{Path(name).stem + '.c':28s} {int(text):7d} {int(data):7d} {int(bss):7d}")
        print(f"{'total':28s} {totals[0]:7d} {totals[1]:7d} {totals[2]:7d}")
        state = state_bytes(tmp)
    print(f"kws_frontend_state: {state} bytes (caller-owned; scratch included)")
    ok = totals[0] <= 8192 and state <= 4096 and totals[1] + totals[2] == 0
    print("goals (text <= 8192, state <= 4096, no static RAM):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
