"""What batching gains ONNX Runtime alone on this CPU: rows/s of one model at batch 1, 6, 16, 32
(14-token inputs, the median descriptor), with 1 and 2 intra-op threads. The ceiling of what the
shared inference workers can gain over per-row sessions (BENCHMARKS.md, "Shared inference worker").
    build/venv/bin/python bench/ort_batching.py <model dir>...   (e.g. build/models/minilm-l6-fp32)
"""
import sys
import time

import numpy as np
import onnxruntime as ort


def rows_per_s(session, names, batch, tokens=14, seconds=3.0):
    feed = {"input_ids": np.ones((batch, tokens), np.int64), "attention_mask": np.ones((batch, tokens), np.int64)}
    if "token_type_ids" in names:
        feed["token_type_ids"] = np.zeros((batch, tokens), np.int64)
    session.run(None, feed)
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        session.run(None, feed)
        runs += 1
    return runs * batch / (time.perf_counter() - start)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for model in sys.argv[1:]:
        for threads in (1, 2):
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            s = ort.InferenceSession(model.rstrip("/") + "/model.onnx", so, providers=["CPUExecutionProvider"])
            names = {i.name for i in s.get_inputs()}
            speeds = {b: rows_per_s(s, names, b) for b in (1, 6, 16, 32)}
            print(f"{model.rstrip('/').split('/')[-1]}, {threads} thread(s): "
                  + ", ".join(f"batch {b} {v:.0f} rows/s" for b, v in speeds.items())
                  + f" (batch 32 / batch 1 = {speeds[32] / speeds[1]:.2f}x)")


if __name__ == "__main__":
    main()
