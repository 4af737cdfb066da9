"""The shared workspace of the README-as-test (``tests/test_readme.py`` holds the tables it applies)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from readme_commands import ROOT, Doc


def plain(d: Doc) -> str:
    """The command without comments, words joined by one space."""
    return " ".join(d.tokens)


def substitute_text(text: str, values: dict[str, str], table: list[tuple[str, str, str]]) -> str:
    """``text`` with each (documented, as run, why) of ``table`` applied at word boundaries, in order."""
    for doc, run, _ in table:
        pattern = r"(?:(?<=[\s=\"'])|^)" + re.escape(doc) + r"(?=$|[\s/:\"'])"
        text = re.sub(pattern, lambda _m, r=run: r.format(**values), text)
    return text


def _child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Session:
    """The shared workspace: a fresh git repository holding only the checkout's .gitignore, where the
    documented commands run one after the other."""

    def __init__(self, base: Path, shared: Path, order: list[Doc], tables):
        import readme_data as rd

        self.base, self.tables = base, tables
        self.ws = base / "ws"
        self.ws.mkdir()
        shutil.copy(ROOT / ".gitignore", self.ws / ".gitignore")
        subprocess.run(["git", "init", "-q", str(self.ws)], check=True)
        extra = base / "extra"
        extra.mkdir()
        data = rd.tiny_birdclef(shared, base / "data")
        self._long_truth(data, extra)
        (extra / "labels.txt").write_text("banana\nsmbani\n")
        mydata = base / "mydata"
        shutil.copytree(data / "train_audio", mydata / "train_audio")
        shutil.copytree(data / "test_soundscapes", mydata / "unlabelled")
        onnx, onnx_toml = rd.byo_onnx(base / "byo")
        self.values = {
            "repo": str(ROOT), "ws": str(self.ws), "shared": str(base / "shared_embeddings"),
            "mydata": str(mydata), "data": str(data), "extra": str(extra),
            "panns": str(rd.panns_checkpoint(base / "panns")), "w2v": str(rd.wav2vec2_folder(base / "w2v")),
            "perch": str(rd.perch_files(shared, base / "perch")), "onnx": str(onnx),
            "onnx_toml": str(onnx_toml),
            "tflite": str(rd.birdnet_tflite()),
        }  # fmt: skip
        configs = base / "configs"  # the shipped defaults, with the same substitutions
        configs.mkdir()
        for f in (ROOT / "configs").glob("*.toml"):
            (configs / f.name).write_text(self.substitute(f.read_text()))
        bin_ = base / "bin"  # `python` and `embedkit` as a user has them, this checkout's code first
        bin_.mkdir()
        for name, body in {
            "python": f'exec {sys.executable} "$@"',
            "embedkit": f'exec {sys.executable} -m embedkit "$@"',
        }.items():
            (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
            (bin_ / name).chmod(0o755)
        self.env = {
            **os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}",
            "EMBEDKIT_CONFIG_DIR": str(configs),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }  # fmt: skip
        self.order = order
        self.results: dict[int, tuple[int, str, float]] = {}

    @staticmethod
    def _long_truth(data: Path, extra: Path) -> None:
        import pandas as pd

        wide = pd.read_csv(data / "test_truth.csv")
        rows = []
        for _, r in wide.iterrows():
            stem, end = r["row_id"].rsplit("_", 1)
            for label in wide.columns[1:]:
                if r[label]:
                    rows.append({"filename": f"{stem}.ogg", "start": int(end) - 5, "end": int(end),
                                 "primary_label": label})  # fmt: skip
        pd.DataFrame(rows).to_csv(extra / "train_soundscapes_labels.csv", index=False)

    def command(self, d: Doc) -> tuple[str, dict[str, str], str | None]:
        """(shell text as run, environment, stdin)."""
        text = d.script if d.script else d.text
        env = dict(self.env)
        for sub, values, _ in self.tables.ENV:
            if sub in d.text:
                env.update(values)
        stdin = next((s for prefix, s, _ in self.tables.STDIN if plain(d).startswith(prefix)), None)
        return self.substitute(text), env, stdin

    def setup(self, d: Doc) -> None:
        kind = next((k for prefix, k, _ in self.tables.SETUP if plain(d).startswith(prefix)), None)
        if kind == "legacy":
            from test_model_trust import legacy_copy

            for name in [t for t in d.tokens[2:] if not t.startswith("-")]:
                path = self.ws / name
                tmp = legacy_copy(path.resolve(), self.base / "legacy" / name)
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                shutil.move(tmp, path)

    def run(self, d: Doc) -> tuple[int, str, float]:
        """Run ``d`` after every command before it in execution order (each once); (rc, output, seconds)."""
        i = self.order.index(d)
        for j in range(i + 1):
            if j not in self.results:
                text, env, stdin = self.command(self.order[j])
                self.setup(self.order[j])
                t0, c0 = time.perf_counter(), _child_cpu()
                p = subprocess.run(["bash", "-c", text], cwd=self.ws, env=env, input=stdin or "", text=True,
                                   capture_output=True, timeout=self.tables.TIMEOUT_S)  # fmt: skip
                self.results[j] = (p.returncode, p.stdout + p.stderr, time.perf_counter() - t0)
                done, out = self.order[j], (p.stdout + p.stderr)[-1500:].splitlines()
                with open(self.base / "timings.txt", "a") as f:  # for whoever measures the suite
                    f.write(f"{self.results[j][2]:7.1f} s wall {_child_cpu() - c0:6.1f} s CPU  ")
                    f.write(f"rc {p.returncode}  {done.where}: {done.text}\n")
                    if p.returncode:
                        f.write(f"    ran: {text}\n" + "".join(f"    | {x}\n" for x in out))
        return self.results[i]

    def substitute(self, text: str) -> str:
        """``text`` with the table's substitutions, line by line."""
        lines = [substitute_text(line, self.values, self.tables.SUBSTITUTIONS) for line in text.splitlines()]
        return "\n".join(lines) + ("\n" if "\n" in text else "")

    def run_all(self) -> None:
        if self.order:
            self.run(self.order[-1])
