"""The host board (host_board.c) as a context manager: a pseudo-terminal that answers the serial
test protocol with the firmware's own C code, its model served by the tflite-micro interpreter.

    with HostBoard(exe, model="micro_speech_quantized.tflite", labels=[...]) as board:
        kwstool device-test --port board.port ...

Run as a script it builds nothing; it starts a built host_board and prints the port, for
trying `kwstool device-test` by hand:
    python tests/firmware/host_board.py EXE MODEL.tflite _silence_,_unknown_,yes,no
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

WINDOW_VALUES = 49 * 40
#: The labels of micro_speech's model (silence, unknown, yes, no) in kwstool's naming.
MICRO_SPEECH_LABELS = ["_silence_", "_unknown_", "yes", "no"]


def _read_exact(fd: int, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


class HostBoard:
    def __init__(
        self,
        exe: Path,
        model: Path | None,
        labels: list[str],
        input_scale: float = 1.0,
        input_zero_point: int = 0,
        recognizer: dict | None = None,
        model_name: str = "host",
    ) -> None:
        self.exe = Path(exe)
        self.model_path = model
        self.labels = labels
        self.input_scale = input_scale
        self.input_zero_point = input_zero_point
        self.recognizer = {
            "average_window_ms": 1000,
            "threshold": 200,
            "suppression_ms": 1500,
            "minimum_coverage_ms": 200,
            **(recognizer or {}),
        }
        self.model_name = model_name
        self.proc: subprocess.Popen | None = None
        self.port = ""
        self.invocations = 0
        self._fds: list[int] = []
        self._thread: threading.Thread | None = None

    def __enter__(self) -> HostBoard:
        args = [
            str(self.exe),
            "--labels",
            ",".join(self.labels),
            "--input-scale",
            repr(float(self.input_scale)),
            "--input-zero-point",
            str(self.input_zero_point),
            "--window-ms",
            str(self.recognizer["average_window_ms"]),
            "--threshold",
            str(self.recognizer["threshold"]),
            "--suppression-ms",
            str(self.recognizer["suppression_ms"]),
            "--min-coverage-ms",
            str(self.recognizer["minimum_coverage_ms"]),
            "--model-name",
            self.model_name,
        ]
        if "thresholds" in self.recognizer:
            args += ["--thresholds", ",".join(str(int(t)) for t in self.recognizer["thresholds"])]
        pass_fds: tuple[int, ...] = ()
        model = None
        if self.model_path is not None:
            from kwstool.deploy.device import TflmModel

            model = TflmModel(self.model_path)
            req_r, req_w = os.pipe()  # board -> model server
            rep_r, rep_w = os.pipe()  # model server -> board
            args += [
                "--output-scale",
                repr(model.output_scale),
                "--output-zero-point",
                str(model.output_zero_point),
                "--model-bytes",
                str(Path(self.model_path).stat().st_size),
                "--model-out",
                str(req_w),
                "--model-in",
                str(rep_r),
            ]
            pass_fds = (req_w, rep_r)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, pass_fds=pass_fds)
        if model is not None:
            os.close(req_w)
            os.close(rep_r)
            self._fds = [req_r, rep_w]
            self._thread = threading.Thread(
                target=self._serve, args=(model, req_r, rep_w), daemon=True
            )
            self._thread.start()
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("PTY "):
            self.__exit__()
            raise RuntimeError(f"host_board did not start: {line!r}")
        self.port = line[4:]
        return self

    def _serve(self, model, req: int, rep: int) -> None:
        try:
            while True:
                tag = _read_exact(req, 1)
                window = _read_exact(req, WINDOW_VALUES) if tag == b"M" else None
                if window is None:
                    return  # the board exited
                out = model(np.frombuffer(window, np.int8))
                self.invocations += 1
                os.write(rep, out.astype(np.int8).tobytes())
        except OSError:
            return

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self._thread is not None:
            self._thread.join(timeout=5)  # the board's exit closed its pipe ends: EOF
        for fd in self._fds:
            os.close(fd)
        self._fds = []


if __name__ == "__main__":  # pragma: no cover - manual use
    exe, model, labels = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    with HostBoard(Path(exe), Path(model), labels) as hb:
        print(hb.port, flush=True)
        try:
            hb.proc.wait()
        except KeyboardInterrupt:
            pass
