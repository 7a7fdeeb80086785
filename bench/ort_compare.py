#!/usr/bin/env python3
"""Time onnxruntime on a model, the way benches/model.rs times modelwatch-runtime.

Scores the rows of a parity fixture one at a time (µs per row) and in batches of 64
(µs per batch), with onnxruntime's default threading and with one thread. Asks only
for the probability output, like the Rust runtime. The criterion bench
`cargo bench -p modelwatch-runtime --bench model` runs this script right after its own
timings, so the two are measured in the same run; it can also run alone:

    python3 bench/ort_compare.py --model models/fraud.onnx --parity models/fraud.parity.json

Prints a table, or one JSON object with --json.
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def per_call_us(fn, seconds: float) -> tuple[float, float]:
    """Time of one call in µs, median of 5 rounds: (wall clock, CPU time of the process).

    The machine is shared: wall time includes time other processes took the core, CPU
    time (all threads of this process) does not.
    """
    fn()  # warm up
    calls = 1
    while True:  # calibrate: enough calls for about a fifth of the budget
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 25 or calls >= 1 << 22:
            break
        calls *= 2
    per_round = max(1, int(calls * (seconds / 5) / max(elapsed, 1e-9)))
    wall, cpu = [], []
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(per_round):
            fn()
        wall.append((time.perf_counter() - start) / per_round * 1e6)
        cpu.append((time.process_time() - start_cpu) / per_round * 1e6)
    return float(np.median(wall)), float(np.median(cpu))


def measure(model: str, rows: np.ndarray, input_name: str, output: str, threads: int, seconds: float) -> dict:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    singles = [np.ascontiguousarray(r[None, :]) for r in rows]
    batch = np.ascontiguousarray(np.resize(rows, (64, rows.shape[1])))
    state = {"i": 0}

    def one():
        state["i"] = (state["i"] + 1) % len(singles)
        sess.run([output], {input_name: singles[state["i"]]})

    def sixty_four():
        sess.run([output], {input_name: batch})

    row, row_cpu = per_call_us(one, seconds)
    batch, batch_cpu = per_call_us(sixty_four, seconds)
    return {
        "threads": threads or "default",
        "us_per_row": row,
        "us_per_batch64": batch,
        "cpu_us_per_row": row_cpu,
        "cpu_us_per_batch64": batch_cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the .onnx file")
    ap.add_argument("--parity", required=True, help="a parity fixture: its rows are scored")
    ap.add_argument("--output", default="probabilities", help="the output to ask for")
    ap.add_argument("--seconds", type=float, default=1.0, help="time budget per measurement")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    with open(args.parity) as f:
        parity = json.load(f)
    rows = np.array([[np.nan if v is None else v for v in r] for r in parity["rows"]], dtype=np.float32)
    results = [measure(args.model, rows, parity["input_name"], args.output, t, args.seconds) for t in (0, 1)]
    report = {"onnxruntime": ort.__version__, "results": results}
    if args.json:
        print(json.dumps(report))
        return
    print(f"onnxruntime {ort.__version__} on {args.model}")
    for r in results:
        print(f"  threads={r['threads']!s:<8} {r['us_per_row']:8.2f} µs/row  {r['us_per_batch64']:8.2f} µs/batch64"
              f"  (CPU {r['cpu_us_per_row']:.2f} µs/row, {r['cpu_us_per_batch64']:.2f} µs/batch64)")


if __name__ == "__main__":
    main()
