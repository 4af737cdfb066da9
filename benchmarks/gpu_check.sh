#!/usr/bin/env bash
# One prepared GPU check: extraction windows/s (panns fp32/bf16/fp16, wav2vec2, onnx on the CUDA provider when
# the onnx backbone is registered) with random weights, and mlp/mil fit time on GPU vs CPU. Writes the
# "GPU check" section of benchmarks/RESULTS.md. Nothing is downloaded; about 5-8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh                 # on a CUDA machine, from the repository root
#   bash benchmarks/gpu_check.sh --cpu-dry-run   # any machine: every Python part at a tiny size on the CPU
#   bash benchmarks/gpu_check.sh --out gpu.md    # write the section to gpu.md instead of RESULTS.md
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

dry=0
for a in "$@"; do [[ "$a" == "--cpu-dry-run" ]] && dry=1; done

echo "gpu_check: python $("$PY" -c 'import sys; print(sys.version.split()[0])'), $(nproc) cores" >&2
if [[ $dry -eq 0 ]]; then
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >&2 || true
    fi
    if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check: torch $("$PY" -c 'import torch; print(torch.__version__)') sees no CUDA device;" \
             "install a CUDA torch build or run with --cpu-dry-run" >&2
        exit 2
    fi
    if ! "$PY" -c 'import onnxruntime as o, sys; sys.exit(0 if "CUDAExecutionProvider" in o.get_available_providers() else 1)' 2>/dev/null; then
        echo "gpu_check: onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu); the onnx row" \
             "will say why it was skipped" >&2
    fi
fi

t0=$(date +%s)
"$PY" benchmarks/gpu_check.py "$@"
echo "gpu_check: done in $(( $(date +%s) - t0 )) s" >&2
