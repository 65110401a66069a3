"""Per-layer capture for OpenVINO IR: the tensors of the ONNX file the IR was made from, read through OpenVINO.

edgekit's IR is always converted from the run's fp32 ONNX file (`exporters.openvino_export`), and OpenVINO's ONNX
frontend keeps the ONNX tensor names on the IR's outputs (NNCF's int8 adds unnamed FakeQuantize nodes and keeps
the rest). So the ONNX file's tensor list (`OnnxGraph`: shapes, layouts, producing ops, the Keras-name mapping's
input) serves the IR as is, restricted to the names the IR has. Each probed tensor becomes an extra model output;
where NNCF put a FakeQuantize after it, its output is read instead: the fake-quantized value the next layer uses,
as the ONNX capture reads a QuantizeLinear's output. Without that ONNX file there is no tensor list: only the
output is compared, and the capture's note says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from toolkit.diagnosis.capture import Capture, Feeds, OnnxGraph
from toolkit.diagnosis.layers import CHUNK, Tensor

# As `runtimes.openvino_runner.OpenVINORunner(num_threads=1)` compiles a model: f32 on every CPU.
_CONFIG = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "1"}
_PRECISION = {"INFERENCE_PRECISION_HINT": "f32"}


def _ports(model: Any) -> dict[str, Any]:
    """Tensor name -> the output port that holds its value as the next layer reads it (after a FakeQuantize)."""
    ports: dict[str, Any] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Constant", "Result"):
            continue
        for out in op.outputs():
            targets = list(out.get_target_inputs())
            read = out
            if len(targets) == 1 and targets[0].get_node().get_type_name() == "FakeQuantize":
                read = targets[0].get_node().output(0)
            for name in out.get_names():
                ports.setdefault(name, read)
    return ports


class OpenVINOGraph:
    """An `.xml` IR whose intermediate tensors (those of its ONNX `source`) are added as model outputs."""

    def __init__(self, path: Path, source: Path | None) -> None:
        from runtimes.openvino_import import import_openvino

        self.path = path
        self._ov = import_openvino()
        self._core = self._ov.Core()
        model = self._read()
        self.input_names = [sorted(p.get_names())[0] for p in model.inputs]
        self.input_name = self.input_names[0]
        self.output_name = sorted(model.outputs[0].get_names())[0]
        self.input_keys = {name: name for name in self.input_names}
        self.output_keys = {name: name for name in (sorted(p.get_names())[0] for p in model.outputs)}
        self.constants: list[dict[str, Any]] = []
        self.tensors: list[Tensor] = []
        self.source = source if source is not None and source.is_file() else None
        if self.source is not None:
            ports = _ports(model)
            self.tensors = [t for t in OnnxGraph(self.source).tensors if t.read in ports or t.read in self.input_keys]

    def _read(self) -> Any:
        return self._core.read_model(str(self.path), str(self.path.with_suffix(".bin")))

    def feeds_by_key(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """`feeds` keyed by model input name (one array: the first input's)."""
        return dict(feeds) if isinstance(feeds, dict) else {self.input_name: feeds}

    def _compile(self, reads: list[str]) -> tuple[Any, list[str]]:
        """The model compiled with `reads` added as outputs; the name of each of its outputs, in order."""
        from runtimes.capture import native_output

        model = self._read()
        ports = _ports(model)
        extra = [r for r in reads if r not in self.input_keys and r not in self.output_keys]
        if extra:
            model.add_outputs([ports[r] for r in extra])
        names = list(self.output_keys) + extra
        with native_output():
            compiled = self._core.compile_model(model, "CPU", {**_CONFIG, **_PRECISION})
        return compiled, names

    def capture(self, keys: list[str], images: Feeds) -> Capture:
        reads = list(dict.fromkeys(keys))
        feeds = self.feeds_by_key(images)
        probed, probed_names = self._compile(reads)
        plain, plain_names = self._compile([])
        parts: dict[str, list[np.ndarray]] = {k: [] for k in reads}
        outs: dict[str, list[np.ndarray]] = {name: [] for name in self.output_keys}
        plain_outs: dict[str, list[np.ndarray]] = {name: [] for name in self.output_keys}
        n = len(next(iter(feeds.values())))
        probe_request, plain_request = probed.create_infer_request(), plain.create_infer_request()
        for i in range(0, n, CHUNK):
            batch = {k: np.ascontiguousarray(v[i : i + CHUNK], dtype=np.float32) for k, v in feeds.items()}
            got = probe_request.infer(batch).to_tuple()
            values: dict[str, np.ndarray] = dict(zip(probed_names, got, strict=True))
            values.update(batch)
            for k in reads:
                parts[k].append(np.asarray(values[k], dtype=np.float32))
            for name, out in zip(plain_names, plain_request.infer(batch).to_tuple(), strict=True):
                outs[name].append(np.asarray(values[name], dtype=np.float32))
                plain_outs[name].append(np.asarray(out, dtype=np.float32))
        cap = Capture(self.tensors)
        cap.values = {k: np.concatenate(v) for k, v in parts.items()}
        cap.outputs = {k: np.concatenate(v) for k, v in outs.items()}
        cap.plain_outputs = {k: np.concatenate(v) for k, v in plain_outs.items()}
        cap.probs, cap.plain_probs = cap.outputs[self.output_name], cap.plain_outputs[self.output_name]
        if self.source is None:
            cap.notes.append(
                f"per-layer error is not available for {self.path.name}: the ONNX file it was converted from "
                "(model_fp32.onnx beside it, or the run's model.onnx) is missing, so only its output is compared"
            )
        else:
            cap.notes.append(
                f"OpenVINO CPU plugin (f32 inference precision) with the tensors of {self.source.name} the IR keeps "
                "added as model outputs (read after NNCF's FakeQuantize where there is one)"
            )
        return cap
