"""What a kit's models need at run time: the pre-flight check of ``kaggle_infer.py``, weights files.

:func:`preflight` runs in the Kaggle notebook after the offline install; :func:`weights_warnings` runs when
``embedkit kaggle-kit`` builds the kit, so a model whose backbone reads a weights file that no package brings
(PANNs, wav2vec2, an ONNX/TFLite/Perch model file; not BirdNET's bundled model) is said at build time, and at
run time the error names the file and ``--backbone-weights``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _parts(model: str | Path) -> list[dict]:
    """The provenance of each backbone a model reads (one, or each part of a fused model)."""
    m = json.loads((Path(model) / "model.json").read_text() or "{}")
    return [p.get("provenance") or {} for p in (m.get("fusion") or [m])]


def external_weights(prov: dict) -> str | None:
    """The weights file a backbone needs that no package brings (None for BirdNET's bundled model).

    Returns:
        What to pass with ``--backbone-weights NAME=...``: the model file's name, or the backbone's help.
    """
    name = str(prov.get("backbone", ""))
    if name == "birdnet" and str(prov.get("weights", "bundled")).startswith("bundled"):
        return None
    if prov.get("model_file"):
        return Path(str(prov["model_file"])).name
    try:
        from embedkit.backbones import backbone_class

        return backbone_class(name).weights_help()
    except Exception:  # an unknown backbone: its weights are not in the kit either
        return f"the {name} weights"


def weights_warnings(models: list[str | Path]) -> list[str]:
    """One line per model part whose weights file the kit does not carry (see :func:`external_weights`)."""
    out = []
    for m in models:
        for prov in _parts(m):
            need = external_weights(prov)
            if need:
                b = prov.get("backbone")
                out.append(f"{Path(m).name} needs the {b} weights file ({need}), which the kit does not "
                           f"carry: upload it as a Kaggle dataset and run kaggle_infer.py -- "
                           f"--backbone-weights {b}=/kaggle/input/<dataset>/<file>")
    return out



def preflight(argv: list[str]) -> int:
    """Load each model, build its backbone, embed one silent window and predict (what infer will need).

    Run by ``kaggle_infer.py`` after the install, so a package missing from the kit stops the notebook with
    one clear line instead of a submission of class priors (infer's fallback for files it cannot use).

    Args:
        argv: model folders, then optionally ``--`` and ``embedkit infer`` flags (``--backbone-weights``).

    Returns:
        0 when every model works, else 1 (the reason printed on stderr).
    """
    cut = argv.index("--") if "--" in argv else len(argv)
    models, extra = argv[:cut], argv[cut + 1 :]
    try:  # the imports too: a package missing from the kit is one line, not a traceback
        import numpy as np

        from embedkit.backbones.build import build_backbone
        from embedkit.config import InferConfig
        from embedkit.flags import config_from_args, parser_for
        from embedkit.predict.model import load_model

        cfg = config_from_args(InferConfig, parser_for(InferConfig).parse_args(extra), "infer")
    except Exception as e:
        print(f"[kit] cannot start: {type(e).__name__}: {' '.join(str(e).split())[:200]}. If a package is "
              "missing, rebuild the kit with it (embedkit kaggle-kit --packages ...)", file=sys.stderr)
        return 1
    for folder in models:
        try:
            import soundfile  # noqa: F401 - decoding and resampling, used by every backbone
            import soxr  # noqa: F401

            from embedkit.predict.fusion import model_parts

            m = load_model(folder, trust_pickle=cfg.trust_pickle)
            embs, logits = [], None
            for j, prov in enumerate(model_parts(m)):  # one part, or each backbone of a fused model
                need = external_weights(prov)
                given = cfg.backbone_weights.get(prov["backbone"]) or prov.get("model_file")
                if need and not (given and Path(str(given)).exists()):
                    print(f"[kit] {Path(folder).name} cannot run here: backbone {prov['backbone']} needs its "
                          f"weights file ({need}), which the kit does not carry; add it as a Kaggle dataset "
                          f"and pass -- --backbone-weights {prov['backbone']}=/kaggle/input/<dataset>/<file>",
                          file=sys.stderr)
                    return 1
                bb = build_backbone(prov, **cfg.backbone_run(prov["backbone"]))
                x = np.zeros((1, round(float(prov.get("window_s", 5.0)) * bb.sample_rate)), np.float32)
                if j == 0 and m.meta.get("needs_logits"):  # zero-shot models blend BirdNET's own logits
                    e, logits = bb.embed_with_logits(x)
                else:
                    e = bb.embed(x)
                embs.append(e)
                bb.close()
            m.predict(np.hstack(embs), logits)
        except Exception as e:  # one line, whatever went wrong
            print(f"[kit] {Path(folder).name} cannot run here: {type(e).__name__}: {e}. If a package is "
                  "missing, rebuild the kit with it (embedkit kaggle-kit --packages ...)", file=sys.stderr)
            return 1
        print(f"[kit] {Path(folder).name}: backbone {m.provenance.get('backbone')} and head "
              f"{m.meta.get('head')} load and predict", file=sys.stderr)
    return 0
