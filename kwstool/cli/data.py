"""`kwstool features` and `kwstool prepare`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from kwstool.cli.app import app, console, err_console
from kwstool.errors import KwsError


@app.command()
def features(
    paths: list[Path] = typer.Argument(
        ..., help="Audio files (WAV, FLAC, OGG, MP3) and/or folders of them."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output .npy: (49,40) int8 for one WAV, (N,49,40) plus OUT.files.txt for several.",
    ),
    png: Path | None = typer.Option(
        None, "--png", help="Also render the spectrogram(s) to this PNG."
    ),
    all_windows: bool = typer.Option(
        False,
        "--all-windows",
        help="One recording of any length: write its whole feature sequence (frames, 40) "
        "instead of one 1 s clip (a longer file is otherwise an error).",
    ),
) -> None:
    """Compute micro_speech features (49x40 int8) with the same C front end as the firmware."""
    from kwstool.data.features import features_for_paths

    result = features_for_paths(paths, out, png=png, all_windows=all_windows)
    for bad in result.skipped:
        err_console.print(f"[yellow]skipped[/] {bad['file']}: {bad['reason']}", highlight=False)
    console.print(
        f"wrote {result.out} shape={tuple(result.shape)}"
        + (f" and {result.png}" if result.png else ""),
        highlight=False,
    )
    if result.count == 0:
        raise KwsError("no readable WAV among the inputs; nothing written")


@app.command()
def prepare(
    source: list[str] = typer.Option(
        ["tfds"],
        "--source",
        "-s",
        help="'tfds' (TFDS speech_commands, downloads v0.02), an http(s) URL or path of a "
        "Speech Commands .tar.gz, an extracted archive folder, the canonical test-set "
        "folder, or your own folder-per-label tree of WAVs. Repeat as NAME=PATH to merge "
        "several (a NAME starting with 'synth' is synthetic: train only).",
    ),
    negatives: list[str] = typer.Option(
        [],
        "--negatives",
        help="NAME=PATH of clips that are all _unknown_ (e.g. Speech "
        "Commands); keyword clips in them are left out. Repeatable.",
    ),
    synthetic: list[str] = typer.Option(
        [], "--synthetic", help="NAME of a source whose clips are synthetic: train only."
    ),
    unknown_min: int = typer.Option(
        0,
        "--unknown-min",
        help="At least this many _unknown_ examples per split (merged "
        "sources: a few own recordings need many negatives).",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        "-d",
        help="Output folder (default: ./data/<source name>; merged sources: ./data/<words>).",
    ),
    words: str = typer.Option(
        "yes,no,up,down,left,right,on,off,stop,go",
        "--words",
        "-w",
        help="Comma-separated keywords (folder names). Labels: _silence_, _unknown_, then these.",
    ),
    silence_share: float = typer.Option(
        10.0, "--silence-share", help="Silence examples per split, % of its keyword count."
    ),
    unknown_share: float = typer.Option(
        10.0, "--unknown-share", help="Unknown-word examples per split, % of its keyword count."
    ),
    validation_pct: float = typer.Option(
        10.0, "--validation-pct", help="Speakers hashed into validation, % (without list files)."
    ),
    testing_pct: float = typer.Option(
        10.0, "--testing-pct", help="Speakers hashed into test, % (without list files)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the unknown/silence draws."),
    download_dir: Path | None = typer.Option(
        None,
        "--download-dir",
        help="Where archives are downloaded and extracted [default: ./data/downloads].",
    ),
    sha256: str | None = typer.Option(
        None,
        "--sha256",
        help="Expected sha256 of the archive (default: the official checksum "
        "for known Speech Commands archive names).",
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the cache matches."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Prepare keyword data: speaker-disjoint train/validation/test splits as cached features."""
    from rich.table import Table

    from kwstool.data import prepare as run_prepare

    result = run_prepare(
        source[0] if len(source) == 1 else source,
        data_dir,
        words=words,
        silence_share=silence_share,
        unknown_share=unknown_share,
        validation_pct=validation_pct,
        testing_pct=testing_pct,
        seed=seed,
        download_dir=download_dir,
        sha256=sha256,
        force=force,
        progress=not no_progress,
        negatives=negatives,
        synthetic=synthetic,
        unknown_min=unknown_min,
    )
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    names = list(result.splits)
    table = Table(title=f"class counts in {result.data_dir}")
    table.add_column("label")
    for s in names:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    for label in result.labels:
        row = [result.splits[s]["per_class"][label] for s in names]
        table.add_row(label, *map(str, row), str(sum(row)))
    totals = [result.splits[s]["count"] for s in names]
    table.add_section()
    table.add_row("all", *map(str, totals), str(sum(totals)), style="bold")
    console.print(table)
    console.print(
        f"source: {result.source} ({result.source_kind})", highlight=False, soft_wrap=True
    )
    for name, info in (result.sources or {}).items():
        kind = "synthetic, train only" if info["synthetic"] else info["role"]
        per = ", ".join(f"{s} {info['clips'][s]}" for s in names)
        console.print(f"  {name} ({kind}): {per}", highlight=False)
    for word, per_split in (result.keyword_clips or {}).items():
        parts = []
        for s in names:
            c = per_split[s]
            parts.append(
                f"{s} {c['real']} real"
                + (f" + {c['synthetic']} synthetic" if c["synthetic"] else "")
            )
        console.print(f"{word}: {', '.join(parts)}", highlight=False)
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False, soft_wrap=True)
    if result.skipped:
        err_console.print(
            f"[yellow]skipped {len(result.skipped)} unreadable clip(s)[/] "
            f"(listed in {result.data_dir / 'manifest.json'}):",
            highlight=False,
        )
        for bad in result.skipped[:10]:
            err_console.print(f"  {bad['reason']}", highlight=False, soft_wrap=True)
    how = (
        "up to date, nothing to do"
        if result.cached
        else f"{result.clips_decoded} clips read of {result.clips_found}"
    )
    console.print(f"{how} in {result.seconds:.1f} s", highlight=False)
