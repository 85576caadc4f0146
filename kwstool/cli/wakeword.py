"""`kwstool record` and `kwstool synth`: clips of your own wake word (see docs/WAKEWORD.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kwstool.cli.app import app, console, err_console

if TYPE_CHECKING:
    from kwstool.data.tts import EngineOptions


class _ConsoleUI:
    """The guided session on the terminal: prompt, countdown, a level meter, verdicts."""

    WIDTH = 36  # characters of the level meter

    def prompt(self, index: int, count: int, word: str) -> None:
        console.print(
            f"\n[bold]take {index}/{count}[/]: say [bold cyan]{word.replace('_', ' ')}"
            f"[/] after the countdown",
            highlight=False,
        )

    def countdown(self, n: int) -> None:
        console.print(f"  {n}...", end="", highlight=False)
        if n == 1:
            console.print(" [bold green]speak![/]", highlight=False)

    def level(self, db: float) -> None:
        filled = max(0, min(self.WIDTH, int((db + 60.0) / 60.0 * self.WIDTH)))
        colour = "red" if db > -1.0 else "green" if db > -35.0 else "yellow"
        bar = f"[{colour}]{'#' * filled}[/]{'.' * (self.WIDTH - filled)}"
        console.print(f"\r  level {bar} {db:6.1f} dBFS", end="", highlight=False)

    def rejected(self, reason: str) -> None:
        console.print(f"\n  [yellow]rejected[/]: {reason}; again", highlight=False)

    def saved(self, path: Path) -> None:
        console.print(f"\n  [green]saved[/] {path}", highlight=False)


@app.command()
def record(
    word: str = typer.Argument(..., help="The keyword, as its folder name (e.g. hey_lamp)."),
    count: int = typer.Option(
        20, "--count", "-n", help="Good takes to record (microphone; --wav keeps every good one)."
    ),
    out: Path = typer.Option(
        Path("recordings"), "--out", "-o", help="Folder of label folders; clips go to OUT/WORD/."
    ),
    speaker: str | None = typer.Option(
        None, "--speaker", help="Who speaks (file prefix SPEAKER_nohash_K) [default: login]."
    ),
    wav: Path | None = typer.Option(
        None, "--wav", help="Split this recording of the word said repeatedly instead."
    ),
    seconds: float = typer.Option(2.0, "--seconds", help="Length of one take."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Record your own keyword clips: guided microphone takes, or split one long recording."""
    from kwstool.core.settings import check
    from kwstool.data import record as rec

    check(seconds=seconds)  # before the microphone opens
    if wav is not None:
        result = rec.split_recording(wav, word, out, speaker)
    else:
        with rec.Microphone() as mic:
            console.print(f"microphone: {mic.name} ({mic.rate} Hz)", highlight=False)
            result = rec.record_session(
                mic, word, count, out, speaker, take_seconds=seconds, ui=_ConsoleUI()
            )
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    for reason in result.rejected if wav is not None else []:
        err_console.print(f"[yellow]rejected[/] take at {reason}", highlight=False)
    console.print(
        f"wrote {len(result.saved)} clip(s) of {word} by {result.speaker} to "
        f"{result.folder} ({len(result.rejected)} take(s) rejected)",
        highlight=False,
    )


def _range(value: str | None, option: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2):
        from kwstool.errors import KwsError

        raise KwsError(f"{option} {value!r}: give LOW,HIGH (e.g. 0.8,1.2) or one number")
    return parts[0], parts[-1]


def _print_engines(options: EngineOptions) -> None:
    from kwstool.data import tts

    for row in tts.engine_table(options):
        state = "installed" if row["installed"] else "missing"
        default = " (default)" if row["default"] else ""
        line = f"{row['engine']:<10} {state:<9} {row['summary']}{default}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)
        if not row["installed"]:
            console.print(
                f"{'':<10} {row['missing']}", highlight=False, markup=False, soft_wrap=True
            )


@app.command()
def synth(
    word: str | None = typer.Argument(
        None, help="The keyword, as its folder name (e.g. hey_lamp)."
    ),
    count: int = typer.Option(200, "--count", "-n", help="Clips to make."),
    out: Path = typer.Option(
        Path("synth"), "--out", "-o", help="Folder of label folders; clips go to OUT/WORD/."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the voice order and augmentation."),
    noise: Path | None = typer.Option(
        None, "--noise", help="Folder of background-noise WAVs to mix in [default: pink noise]."
    ),
    text: str | None = typer.Option(
        None, "--text", help="What to say [default: the word with '_' as spaces]."
    ),
    plain: bool = typer.Option(False, "--plain", help="No augmentation (only resample/centre)."),
    engine: str = typer.Option(
        "espeak-ng", "--engine", "-e", help="espeak-ng, kokoro or flite; 'list' lists them."
    ),
    list_engines: bool = typer.Option(
        False, "--list-engines", help="List the engines and whether each is installed."
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Engine model file (kokoro: a .onnx) [default: installed one]."
    ),
    voices: Path | None = typer.Option(
        None, "--voices", help="Engine voices (kokoro: voices/ folder, .bin npz or npm .tgz)."
    ),
    mix: float | None = typer.Option(
        None, "--mix", help="Share of clips in a mix of two voices (kokoro) [default: 0.5]."
    ),
    speed: str | None = typer.Option(
        None, "--speed", help="Relative speed range LOW,HIGH [default: the engine's]."
    ),
    negatives: str | None = typer.Option(
        None,
        "--negatives",
        help="Say these comma-separated texts instead, each into OUT/<text>/ (negatives).",
    ),
    confusables: bool = typer.Option(
        False, "--confusables", help="Say words and phrases that sound like WORD (negatives)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Make synthetic clips of a keyword (or confusable negatives) with a TTS engine."""
    from kwstool.data import tts
    from kwstool.data.synth import synth as run_synth
    from kwstool.errors import KwsError

    options = tts.EngineOptions(model, voices)
    if list_engines or engine.strip().lower() == "list":
        if as_json:
            sys.stdout.write(json.dumps(tts.engine_table(options), indent=2) + "\n")
        else:
            _print_engines(options)
        return
    if word is None:
        raise KwsError("synth: give the WORD to say (e.g. `kwstool synth hey_lamp`)")
    result = run_synth(
        word,
        count,
        out,
        seed=seed,
        noise_dir=noise,
        augmented=not plain,
        text=text,
        engine=engine,
        options=options,
        mix=mix,
        speed=_range(speed, "--speed"),
        negatives=negatives.split(",") if negatives else None,
        confusables=confusables,
        progress=not (no_progress or as_json),
    )
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    what = f"of {word}"
    if negatives or confusables:
        said = list(dict.fromkeys(result.texts))
        what = f"of {len(said)} texts ({', '.join(said[:6])}{', ...' if len(said) > 6 else ''})"
    console.print(
        f"wrote {len(result.saved)} {result.engine} clip(s) {what} in "
        f"{len(set(result.voices))} voices to {result.folder}",
        highlight=False,
    )
