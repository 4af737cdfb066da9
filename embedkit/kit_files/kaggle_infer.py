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


def verify():
    """Check every wheel and model file against kit.json's SHA-256; returns the (listed) wheels to install."""
    with open(os.path.join(KIT, "kit.json")) as f:
        want = json.load(f)["sha256"]
    for rel, digest in sorted(want.items()):
        h = hashlib.sha256()
        with open(os.path.join(KIT, rel), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != digest:
            sys.exit(f"[kit] {rel}: SHA-256 differs from kit.json; rebuild or re-upload the kit")
    models = [r[len("models/"):] for r in want if r.startswith("models/")]
    for root, _, names in os.walk(os.path.join(KIT, "models")):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), os.path.join(KIT, "models"))
            if rel not in models:
                sys.exit(f"[kit] models/{rel}: not listed in kit.json; rebuild the kit")
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
