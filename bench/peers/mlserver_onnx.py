"""A small MLServer runtime for bench/peers.py: an ONNX classifier scored by
onnxruntime, over the Open Inference Protocol.

MLServer 1.7.1 ships no ONNX runtime, so the benchmark brings this one. Its
model-settings.json names it (`"implementation": "mlserver_onnx.OnnxClassifier"`,
with this folder on PYTHONPATH) and points `parameters.uri` at the .onnx file;
`parameters.extra` may give `input`, `output` and `column` (default: the model's
first input, an output named `probabilities`, column 1, as in models/fraud.card.json).

A request carries one FP32 tensor of shape [N, F] (the features in the model's
order); the answer is one FP32 tensor `score` of shape [N], the probability of the
class in `column`.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxClassifier(MLModel):
    """Scores the request's one tensor with onnxruntime on one thread."""

    async def load(self) -> bool:
        path = await get_model_uri(self._settings)
        extra = (self._settings.parameters.extra or {}) if self._settings.parameters else {}
        options = ort.SessionOptions()
        # One thread, like the seed app's workers: the peers get the same model setup.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._input = extra.get("input", self._session.get_inputs()[0].name)
        self._output = extra.get("output", "probabilities")
        self._column = int(extra.get("column", 1))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1:
            raise InferenceError(f"expected one input tensor, got {len(payload.inputs)}")
        rows = NumpyCodec.decode_input(payload.inputs[0])
        if rows.ndim != 2:
            raise InferenceError(f"expected a tensor of shape [N, F], got {list(rows.shape)}")
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        probabilities = self._session.run([self._output], {self._input: rows})[0]
        score = np.ascontiguousarray(probabilities[:, self._column], dtype=np.float32)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[NumpyCodec.encode_output("score", score)],
        )
