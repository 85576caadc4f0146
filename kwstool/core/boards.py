"""The boards kwstool builds for: one record per board, shared by export, profile and
device-test (flash and RAM budgets, the CPU and its clock, the microphone)."""

from __future__ import annotations

from dataclasses import dataclass

from kwstool.errors import KwsError


@dataclass(frozen=True)
class Board:
    """Memory budget of a board: what the model (flash) and the arena (RAM) may use."""

    name: str
    description: str
    flash_bytes: int  # flash the application image may occupy
    flash_note: str
    flash_reserve: int  # firmware besides the model: core, TFLM kernels, front end, app
    ram_bytes: int  # RAM for static data, heap and stacks
    ram_reserve: int  # RAM for everything but the tensor arena
    cpu: str  # the core that runs the model
    clock_mhz: int  # its clock
    microphone: str  # what the firmware's audio provider reads

    @property
    def model_budget(self) -> int:
        return self.flash_bytes - self.flash_reserve

    @property
    def arena_budget(self) -> int:
        return self.ram_bytes - self.ram_reserve


KIB = 1024
#: Reserves are deliberately generous: the Arduino cores, the TFLite-Micro kernels (CMSIS-NN /
#: ESP-NN), our front end, audio DMA buffers, serial buffers and stacks all need room.
BOARDS: dict[str, Board] = {
    "nano33ble": Board(
        name="nano33ble",
        description="Arduino Nano 33 BLE (Sense), nRF52840",
        flash_bytes=1024 * KIB - 64 * KIB,
        flash_note="1 MiB flash less the 64 KiB bootloader",
        flash_reserve=384 * KIB,
        ram_bytes=256 * KIB,
        ram_reserve=96 * KIB,
        cpu="Cortex-M4F (CMSIS-NN kernels)",
        clock_mhz=64,
        microphone="on-board MP34DT05 PDM microphone (Sense)",
    ),
    "esp32dev": Board(
        name="esp32dev",
        description="ESP32 dev board (ESP32-WROOM-32, 4 MiB flash)",
        flash_bytes=1280 * KIB,
        flash_note="the 1.25 MiB app partition of the default 4 MiB partition table",
        flash_reserve=512 * KIB,
        ram_bytes=320 * KIB,
        ram_reserve=160 * KIB,
        cpu="Xtensa LX6 (the pinned library's portable CMSIS-NN C kernels; no ESP-NN)",
        clock_mhz=240,
        microphone="INMP441 I2S MEMS microphone",
    ),
}


def arena_margin(used: int) -> int:
    """Bytes added to the measured arena: a quarter of it, at least 2 KiB, multiple of 16.

    Covers what the host measurement does not see: CMSIS-NN / ESP-NN kernels ask for scratch
    buffers the reference kernels do not, and the board's TFLite-Micro version may allocate
    slightly differently. (The host build's 64-bit pointers already make the measurement an
    upper bound for the 32-bit boards.)
    """
    margin = max(2048, used // 4)
    return (margin + 15) // 16 * 16


def arena_total(used: int) -> int:
    """``KWS_MODEL_ARENA_BYTES``: measured arena plus margin, rounded up to a multiple of 16."""
    return (used + arena_margin(used) + 15) // 16 * 16


def get_board(name: str) -> Board:
    """The board called ``name``; an unknown name is a one-line error listing the choices."""
    if name not in BOARDS:
        raise KwsError(f"unknown board {name!r}; choose one of {', '.join(BOARDS)}")
    return BOARDS[name]
