#!/usr/bin/env python3
"""Drives a running `modelwatch serve` with Triton's HTTP client (tritonclient[http]),
as a user who already has it would, and prints what it saw as one JSON object.

usage: triton_client.py --url 127.0.0.1:PORT --rows ROWS.json [--model NAME]

Without --model, the bundled fraud model: ROWS.json is a list of {"customer_id",
"terminal_id", "amount", "timestamp"}. The calls, each reported under its own key:

- live, ready, server_metadata, model_ready, model_metadata (with and without the
  version in the path);
- infer_json: every input and output as JSON (binary_data=False), amount FP32 [N];
- infer_binary: every input and output as binary data, amount FP64 [N, 1], the
  version in the path;
- infer_default: binary inputs and no requested outputs (the client then asks for
  every output as binary data);
- bad_inputs: requests the server must refuse, each with the client's status and
  message.

With --model NAME, any served model, driven from its metadata alone: ROWS.json is a
list of objects with a value for each input the metadata lists (numbers, and text for
BYTES inputs). The calls:

- model_metadata, model_ready;
- infer_json: every input and output as JSON, number inputs FP32;
- infer_binary: every input and output as binary data, number inputs FP64 [N, 1];
- infer_unix_time: BYTES inputs that hold RFC 3339 times sent as INT64 Unix seconds;
- each under "outputs": every output of the metadata, as a list;
- bad_inputs: missing_input (the last input left out), unknown_output.

The Rust test (crates/modelwatch-cli/tests/it/oip.rs) makes the assertions.
"""

import argparse
import datetime
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


def unix_seconds(text):
    """An RFC 3339 time as Unix seconds, or None when it is not one."""
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp())
    except (TypeError, ValueError):
        return None


def any_model(client, model, rows):
    """Drives `model` from its metadata only, as a generic client would."""
    metadata = client.get_model_metadata(model)
    n = len(rows)
    output_names = [o["name"] for o in metadata["outputs"]]

    def tensors(binary, number_type, shape, unix_time=False, skip=None):
        out = []
        for spec in metadata["inputs"]:
            name = spec["name"]
            if name == skip:
                continue
            values = [r[name] for r in rows]
            if spec["datatype"] == "BYTES":
                seconds = [unix_seconds(v) for v in values]
                if unix_time and all(s is not None for s in seconds):
                    tensor = httpclient.InferInput(name, [n], "INT64")
                    tensor.set_data_from_numpy(np.array(seconds, dtype=np.int64),
                                               binary_data=binary)
                else:
                    tensor = text_input(name, values, binary)
            else:
                dtype = np.float32 if number_type == "FP32" else np.float64
                tensor = httpclient.InferInput(name, shape, number_type)
                tensor.set_data_from_numpy(np.array(values, dtype=dtype).reshape(shape),
                                           binary_data=binary)
            out.append(tensor)
        return out

    def outputs_of(answer):
        response = answer.get_response()
        result = {}
        for name in output_names:
            values = answer.as_numpy(name)
            result[name] = (as_text(values) if values.dtype == np.object_
                            else [float(x) for x in values])
        return {
            "outputs": result,
            "dtypes": {name: str(answer.as_numpy(name).dtype) for name in output_names},
            "id": response.get("id"),
            "model_name": response.get("model_name"),
            "binary_outputs": [
                o["name"] for o in response["outputs"]
                if "binary_data_size" in o.get("parameters", {})
            ],
        }

    def requested(binary):
        return [httpclient.InferRequestedOutput(o, binary_data=binary) for o in output_names]

    report = {"model_metadata": metadata, "model_ready": client.is_model_ready(model)}
    report["infer_json"] = outputs_of(client.infer(
        model, tensors(False, "FP32", [n]), outputs=requested(False), request_id="json-1"))
    report["infer_binary"] = outputs_of(client.infer(
        model, tensors(True, "FP64", [n, 1]), outputs=requested(True),
        model_version=metadata["versions"][0], request_id="binary-1"))
    report["infer_unix_time"] = outputs_of(client.infer(
        model, tensors(True, "FP32", [n], unix_time=True), outputs=requested(True)))
    last = metadata["inputs"][-1]["name"]
    report["bad_inputs"] = {
        "missing_input": refused(lambda: client.infer(
            model, tensors(True, "FP32", [n], skip=last))),
        "unknown_output": refused(lambda: client.infer(
            model, tensors(True, "FP32", [n]),
            outputs=[httpclient.InferRequestedOutput("no_such_output")])),
    }
    return report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rows", required=True)
    parser.add_argument("--model", help="drive this model from its metadata (default: fraud)")
    args = parser.parse_args()
    with open(args.rows) as f:
        rows = json.load(f)
    client = httpclient.InferenceServerClient(
        args.url, connection_timeout=30.0, network_timeout=30.0
    )
    if args.model:
        report = any_model(client, args.model, rows)
        client.close()
        print(json.dumps(report))
        return
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

    def bad_timestamp():
        bad = [dict(r, timestamp="yesterday") for r in rows]
        client.infer(MODEL, inputs(bad, True))

    report["bad_inputs"] = {
        "wrong_name": refused(wrong_name),
        "wrong_datatype": refused(wrong_datatype),
        "bad_timestamp": refused(bad_timestamp),
        "unknown_model": refused(lambda: client.infer("churn", inputs(rows, True))),
    }
    client.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
