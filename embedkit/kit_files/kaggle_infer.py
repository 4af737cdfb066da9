"""embedkit offline kit: install the wheels beside this file (no internet), write submission.csv.

Kaggle notebook cell (Internet off; data: the competition and this kit):
    !python /kaggle/input/<this-kit>/kaggle_infer.py
Arguments after the script go to `embedkit infer` and win over the defaults below, e.g. --smooth 0.2,
--weights 0.6 0.4, --data DIR, --out FILE, --backbone-weights panns=/kaggle/input/<ckpt>/Cnn14_mAP=0.431.pth
"""
import hashlib
import json
import os
import subprocess
import sys

KIT = os.path.dirname(os.path.abspath(__file__))
MODELS: list[str] = []  # the model folders in models/, filled in by embedkit kaggle-kit
DATA, OUT = "/kaggle/input/birdclef-2025", "/kaggle/working/submission.csv"
DEFAULTS = ["--data", DATA, "--out", OUT, "--no-progress"]


def _listing():
    """kit.json's ``sha256`` (relative path -> hex digest), or the one problem that stops reading it."""
    try:
        with open(os.path.join(KIT, "kit.json"), "rb") as f:
            want = json.loads(f.read(64 << 20).decode("utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        return None, f"kit.json: unreadable or corrupt ({type(e).__name__}: {' '.join(str(e).split())[:80]})"
    if not isinstance(want, dict) or not all(isinstance(v, str) for v in want.values()):
        return None, "kit.json: sha256 is not an object of path -> digest"
    return want, None


def problems():
    """Every problem of the kit folder against kit.json (empty: the kit is intact), before anything runs."""
    want, err = _listing()
    if err:
        return [err]
    out = []
    for rel, digest in sorted(want.items()):
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or parts[0] not in ("wheels", "models") or len(parts) < 2:
            out.append(f"{rel}: a path outside wheels/ and models/ in kit.json")
            continue
        path = os.path.join(KIT, rel)
        if os.path.islink(path) or not os.path.isfile(path):
            out.append(f"{rel}: listed in kit.json but missing (or not a regular file)")
            continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != digest:
            out.append(f"{rel}: SHA-256 differs from kit.json")
    models = [r[len("models/"):] for r in want if r.startswith("models/")]
    for root, _, names in os.walk(os.path.join(KIT, "models")):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), os.path.join(KIT, "models"))
            if rel not in models:
                out.append(f"models/{rel}: not listed in kit.json")
    return out


def verify():
    """Check every wheel and model file against kit.json's SHA-256; returns the (listed) wheels to install.

    Every problem is reported on one line (exit 2) before anything is installed.
    """
    found = problems()
    if found:
        print(f"[kit] refused: {'; '.join(found)}; rebuild or re-upload the kit", file=sys.stderr)
        sys.exit(2)
    want, _ = _listing()
    return [os.path.join(KIT, r) for r in sorted(want) if r.startswith("wheels/")]


def main():
    """Verify, install the wheels, pre-flight the models, then run ``embedkit infer``."""
    wheels = verify()
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check",
           "--find-links", os.path.join(KIT, "wheels")]
    subprocess.check_call(pip + wheels)
    models = [os.path.join(KIT, "models", m) for m in MODELS]
    check = "import sys; from embedkit.kaggle_kit import preflight; sys.exit(preflight(sys.argv[1:]))"
    if subprocess.call([sys.executable, "-c", check, *models, "--", *sys.argv[1:]]) != 0:
        return 1
    cmd = [sys.executable, "-m", "embedkit", "infer", *DEFAULTS, "--models", *models, *sys.argv[1:]]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
