"""The reference scores of bench/peers.py's agreement check: onnxruntime in process,
nothing between it and the model.

    python reference.py CARD.json < rows.json > scores.json

Scores the card's ONNX file (its `onnx` section: file, input, output, column). Reads a
JSON array of rows (each the features in the card's order), writes a JSON array of
the probability in the card's column for each. Runs in the seed venv, which has
onnxruntime; bench/peers.py itself needs nothing outside the standard library.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main() -> None:
    card_path = Path(sys.argv[1])
    onnx = json.loads(card_path.read_text())["onnx"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(card_path.parent / onnx["file"]), options,
                                   providers=["CPUExecutionProvider"])
    rows = np.array(json.load(sys.stdin), dtype=np.float32)
    probabilities = session.run([onnx["output"]], {onnx["input"]: rows})[0]
    json.dump([float(p) for p in probabilities[:, onnx["column"]]], sys.stdout)


if __name__ == "__main__":
    main()
