#!/usr/bin/env python3
"""Drives a running `modelwatch serve` with Triton's HTTP client (tritonclient[http]),
as a user who already has it would, and prints what it saw as one JSON object.

usage: triton_client.py --url 127.0.0.1:PORT --rows ROWS.json

ROWS.json is a list of {"customer_id", "terminal_id", "amount", "timestamp"}. The
calls, each reported under its own key:

- live, ready, server_metadata, model_ready, model_metadata (with and without the
  version in the path);
- infer_json: every input and output as JSON (binary_data=False), amount FP32 [N];
- infer_binary: every input and output as binary data, amount FP64 [N, 1], the
  version in the path;
- infer_default: binary inputs and no requested outputs (the client then asks for
  every output as binary data);
- bad_inputs: requests the server must refuse, each with the client's status and
  message.

The Rust test (crates/modelwatch-cli/tests/it/oip.rs) makes the assertions.
"""

import argparse
import json

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

MODEL = "fraud"
OUTPUTS = ("score", "decision", "prediction_id")


def text_input(name, values, binary):
    tensor = httpclient.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(
        np.array([v.encode() for v in values], dtype=np.object_), binary_data=binary
    )
    return tensor


def inputs(rows, binary, amount_type="FP32", amount_shape=None):
    n = len(rows)
    shape = amount_shape or [n]
    dtype = np.float32 if amount_type == "FP32" else np.float64
    amount = httpclient.InferInput("amount", shape, amount_type)
    amount.set_data_from_numpy(
        np.array([r["amount"] for r in rows], dtype=dtype).reshape(shape),
        binary_data=binary,
    )
    return [
        amount,
        text_input("customer_id", [r["customer_id"] for r in rows], binary),
        text_input("terminal_id", [r["terminal_id"] for r in rows], binary),
        text_input("timestamp", [r["timestamp"] for r in rows], binary),
    ]


def as_text(values):
    # JSON outputs come back as str, binary ones as bytes.
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def result(answer):
    response = answer.get_response()
    return {
        "scores": [float(x) for x in answer.as_numpy("score")],
        "score_dtype": str(answer.as_numpy("score").dtype),
        "decisions": as_text(answer.as_numpy("decision")),
        "prediction_ids": as_text(answer.as_numpy("prediction_id")),
        "id": response.get("id"),
        "model_name": response.get("model_name"),
        "model_version": response.get("model_version"),
        "binary_outputs": [
            o["name"] for o in response["outputs"] if "binary_data_size" in o.get("parameters", {})
        ],
    }


def refused(call):
    try:
        call()
    except InferenceServerException as e:
        return {"status": e.status(), "message": e.message()}
    return {"status": None, "message": "accepted"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", required=True)
    args = parser.parse_args()
    with open(args.rows) as f:
        rows = json.load(f)
    client = httpclient.InferenceServerClient(
        args.url, connection_timeout=30.0, network_timeout=30.0
    )
    metadata = client.get_model_metadata(MODEL)
    version = metadata["versions"][0]
    report = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "server_metadata": client.get_server_metadata(),
        "model_ready": client.is_model_ready(MODEL),
        "model_ready_version": client.is_model_ready(MODEL, model_version=version),
        "model_metadata": metadata,
        "model_metadata_version": client.get_model_metadata(MODEL, model_version=version),
        "unknown_model_ready": client.is_model_ready("no-such-model"),
    }

    json_outputs = [httpclient.InferRequestedOutput(o, binary_data=False) for o in OUTPUTS]
    report["infer_json"] = result(
        client.infer(MODEL, inputs(rows, False), outputs=json_outputs, request_id="json-1")
    )
    binary_outputs = [httpclient.InferRequestedOutput(o, binary_data=True) for o in OUTPUTS]
    report["infer_binary"] = result(
        client.infer(
            MODEL,
            inputs(rows, True, "FP64", [len(rows), 1]),
            model_version=version,
            outputs=binary_outputs,
            request_id="binary-1",
        )
    )
    report["infer_default"] = result(client.infer(MODEL, inputs(rows, True)))

    def wrong_name():
        tensors = inputs(rows, True)
        renamed = httpclient.InferInput("amt", [len(rows)], "FP32")
        renamed.set_data_from_numpy(np.ones(len(rows), dtype=np.float32))
        client.infer(MODEL, [renamed] + tensors[1:])

    def wrong_datatype():
        tensors = inputs(rows, True)
        ids = httpclient.InferInput("customer_id", [len(rows)], "INT64")
        ids.set_data_from_numpy(np.arange(len(rows), dtype=np.int64))
        client.infer(MODEL, [tensors[0], ids] + tensors[2:])

    def negative_amount():
        bad = [dict(r, amount=-1.0) for r in rows]
        client.infer(MODEL, inputs(bad, True))

    report["bad_inputs"] = {
        "wrong_name": refused(wrong_name),
        "wrong_datatype": refused(wrong_datatype),
        "negative_amount": refused(negative_amount),
        "unknown_model": refused(lambda: client.infer("churn", inputs(rows, True))),
    }
    client.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
