"""``embedkit label``: mark search hits as positives / negatives, for ``fit.py --extra-labels``.

Two ways, same file: fill the ``label`` column of ``hits.csv`` in any editor (``y``, ``n``, or blank), or
run the terminal loop, which asks for each hit still unlabelled: ``y`` (the species is there), ``n`` (it is
not), ``s`` or Enter (skip), ``p`` (play the window), ``q`` (stop). The labelled table is rewritten
atomically after every answer, so stopping (``q``, end of input, Ctrl-C) loses nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import pandas as pd

from embedkit.errors import UsageError
from embedkit.train.extra import parse_label

PLAYERS = ("ffplay -nodisp -autoexit -loglevel quiet", "afplay", "aplay -q", "paplay", "play -q")
PROMPT = "  [y]es / [n]o / [s]kip / [p]lay / [q]uit: "


def read_hits(path: str | os.PathLike, species: str | None = None) -> pd.DataFrame:
    """A hits table with ``label`` and ``species`` as text; ``species`` fills empty species cells."""
    p = Path(path)
    if p.is_dir() or p.name.endswith(".txt"):  # Raven tables of embedkit search --raven
        from embedkit.search.raven import read_raven_hits

        hits = read_raven_hits(p)
    elif not p.is_file():
        raise UsageError(f"hits file not found: {p} (write one with embedkit search --out)")
    else:
        try:
            hits = pd.read_csv(p, dtype={"label": str, "species": str, "file": str}, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as e:
            raise UsageError(f"{p}: not a readable CSV ({' '.join(str(e).split())[:160]})") from None
    missing = [c for c in ("file", "window", "start_s", "end_s") if c not in hits.columns]
    if missing:
        raise UsageError(f"{p}: missing column(s) {missing}; expected a hits table from embedkit search")
    from embedkit.schemas import HITS, check_table

    check_table(hits, HITS, str(p))  # window counts, finite start_s / end_s, relative file names
    for col in ("label", "species"):
        if col not in hits.columns:
            hits[col] = ""
    if species:
        hits.loc[hits["species"].str.strip() == "", "species"] = species
    for i, v in enumerate(hits["label"]):
        try:
            parse_label(v)
        except ValueError:
            raise UsageError(f"{p}: row {i + 2}: label {v!r} is not one of y / n / skip (or blank)") from None
    return hits


def save_hits(hits: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the table atomically (temp file in the same folder, fsync, rename)."""
    from embedkit.files import replace_atomically

    p = Path(path)
    try:
        replace_atomically(p, lambda tmp: hits.to_csv(tmp, index=False))
    except OSError as e:
        raise UsageError(f"cannot write {p}: {e.strerror or e}") from None


def find_player(command: str | None = None) -> list[str] | None:
    """The player command (argv without the file): ``command``, else the first of :data:`PLAYERS` found."""
    for cand in [command] if command else PLAYERS:
        argv = shlex.split(cand)
        if argv and shutil.which(argv[0]):
            return argv
    return None


def play_hit(row, player: list[str] | None, out: TextIO) -> None:
    """Play a hit's window with ``player`` (cut to a temporary WAV first)."""
    from embedkit.audio import AudioError
    from embedkit.search.snippets import read_segment

    if player is None:
        print("  no audio player found; pass --player 'COMMAND' (it gets a WAV path)", file=out)
        return
    try:
        x, sr = read_segment(row["audio"], float(row["start_s"]), float(row["end_s"]))
    except (AudioError, KeyError) as e:
        print(f"  cannot play: {e}", file=out)
        return
    from embedkit.audio.write import write_audio

    with tempfile.TemporaryDirectory(prefix="embedkit-play-") as tmp:
        wav = Path(tmp) / "hit.wav"
        write_audio(wav, x, sr, "WAV", "PCM_16", atomic=False)
        subprocess.run([*player, str(wav)], check=False)


def label_loop(
    hits: pd.DataFrame,
    inp: TextIO,
    out: TextIO,
    save: Callable[[pd.DataFrame], None] | None = None,
    play: Callable[[pd.Series], None] | None = None,
) -> pd.DataFrame:
    """Ask for a label of every unlabelled hit, reading answers line by line from ``inp``.

    Args:
        hits: hits table (its ``label`` column is filled in place).
        inp: answers, one per line (``y``, ``n``, ``s``/empty, ``p``, ``q``); end of input stops.
        out: where prompts go.
        save: called with the table after every answer.
        play: plays a row (for ``p``).

    Returns:
        ``hits`` with the answers in ``label``.
    """
    todo = [i for i, v in zip(hits.index, hits["label"], strict=True) if parse_label(v) is None]
    for n, i in enumerate(todo, 1):
        h = hits.loc[i]
        print(
            f"[{n}/{len(todo)}] #{h.get('rank', i)} score {float(h.get('score', float('nan'))):.3f}  "
            f"{h['file']}  {float(h['start_s']):g}-{float(h['end_s']):g} s  species {h['species'] or '?'}",
            file=out,
        )
        while True:
            print(PROMPT, end="", file=out, flush=True)
            line = inp.readline()
            if not line:  # end of input
                print(file=out)
                return hits
            ans = line.strip().lower()
            if ans in ("p", "play"):
                if play is not None:
                    play(h)
                continue
            if ans in ("q", "quit"):
                return hits
            if ans in ("y", "n", "s", "skip", ""):
                hits.loc[i, "label"] = "" if ans in ("s", "skip") else ans
                break
            print(f"  {ans!r}? answer y, n, s, p or q", file=out)
        if save is not None:
            save(hits)
    return hits


def run_label(cfg, inp: TextIO | None = None, out: TextIO | None = None) -> pd.DataFrame:
    """Label the hits of ``cfg.hits`` (a :class:`~embedkit.search.config.LabelConfig`) into ``cfg.out``."""
    hits = read_hits(cfg.hits, cfg.species)
    out = out or sys.stdout
    save_hits(hits, cfg.out)
    if cfg.loop:
        player = find_player(cfg.player)
        hits = label_loop(
            hits,
            inp or sys.stdin,
            out,
            save=lambda h: save_hits(h, cfg.out),
            play=lambda row: play_hit(row, player, out),
        )
        save_hits(hits, cfg.out)
    if getattr(cfg, "raven", None):  # labelled hits as Raven tables, for fit.py --annotations
        from embedkit.search.raven import write_labelled_tables

        print(f"{len(write_labelled_tables(hits, cfg.raven))} Raven table(s) -> {cfg.raven}", file=out)
    ys = [parse_label(v) for v in hits["label"]]
    n_pos, n_neg = ys.count(1.0), ys.count(0.0)
    print(
        f"{cfg.out}: {n_pos} positive, {n_neg} negative, {len(ys) - n_pos - n_neg} unlabelled "
        f"(use it with fit.py --extra-labels {cfg.out})",
        file=out,
    )
    return hits


def main(cfg) -> int:
    """CLI body of ``label``."""
    try:
        run_label(cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted; answers so far are in {cfg.out}", file=sys.stderr)
        return 130
    return 0
