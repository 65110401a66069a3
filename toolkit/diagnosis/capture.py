"""Run an export instrumented, so that its intermediate tensors can be read.

- TFLite: `experimental_preserve_all_tensors=True` with the default op resolver (XNNPACK then
  delegates each op separately, so the values are the delegated kernels' own); every tensor is
  read after `invoke()`, and int8/int16 tensors are dequantized with their scale and zero point.
- ONNX: the chosen node outputs are appended to the graph outputs and run with ONNX Runtime. A
  float tensor that feeds a QuantizeLinear (QDQ models) is read from that QuantizeLinear's int8
  output and dequantized, so the value is what the next op actually receives.

Instrumenting can change how a runtime executes the graph (ORT no longer fuses a QDQ group into
QLinearConv once its output must be kept), so each capture also runs the plain model and the two
final outputs are compared in the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.diagnosis.layers import ACTIVATION_OPS, CHUNK, QUANT_DTYPES, Tensor


def _reachable(start: Iterable[str], edges: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    stack = list(seen)
    while stack:
        for nxt in edges.get(stack.pop(), []):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _dequantize(q: np.ndarray, scale: float | None, zero_point: int | None) -> np.ndarray:
    if scale is None or q.dtype.kind not in "iu":
        return q.astype(np.float32, copy=False)
    return ((q.astype(np.float32) - np.float32(zero_point or 0)) * np.float32(scale)).astype(np.float32)


@dataclass
class Capture:
    """An export's activation tensors, values of the probed ones, and its plain final output."""

    tensors: list[Tensor]
    values: dict[str, np.ndarray] = field(default_factory=dict)  # tensor key → float32 [N, ...]
    probs: np.ndarray | None = None  # instrumented run's final output
    plain_probs: np.ndarray | None = None  # uninstrumented run's final output
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # output name → instrumented run's
    plain_outputs: dict[str, np.ndarray] = field(default_factory=dict)  # output name → uninstrumented run's


Feeds = np.ndarray | dict[str, np.ndarray]  # one input's batch, or one batch per input name


def _signature_keys(interp: Any, which: str) -> dict[str, str]:
    """Model name → tensor index (as a key) from the file's signature (exports of several tensors keep the
    Keras names there, while the tensors carry the converter's); {} without a signature."""
    try:
        full = interp._get_full_signature_list()
    except AttributeError:
        return {}
    if not full:
        return {}
    key = "serving_default" if "serving_default" in full else next(iter(full))
    return {str(name): str(int(index)) for name, index in full[key].get(which, {}).items()}


# -- TFLite ------------------------------------------------------------------------------------------
class TFLiteGraph:
    """A `.tflite` file run with every tensor preserved."""

    def __init__(self, path: Path) -> None:
        from runtimes.capture import native_output
        from runtimes.tflite_runner import load_interpreter_module

        self.path = path
        self.backend, self.module = load_interpreter_module()
        with native_output():
            interp = self._interpreter(preserve=True)
        details = interp.get_tensor_details()
        ops = [op for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"]
        ins, outs = interp.get_input_details(), interp.get_output_details()
        self.input_index = int(ins[0]["index"])
        # A file with a fixed batch (litert-torch writes batch 1) cannot be resized: it is fed that many at a time.
        signature = ins[0].get("shape_signature")
        self.fixed_batch = int(signature[0]) if signature is not None and len(signature) and signature[0] > 0 else None
        self.output_index = int(outs[0]["index"])
        several = len(ins) > 1 or len(outs) > 1
        # Input/output name → tensor key: the signature's (Keras) names for a model of several tensors.
        self.input_keys = (several and _signature_keys(interp, "inputs")) or {
            str(d["name"]): str(int(d["index"])) for d in ins
        }
        self.output_keys = (several and _signature_keys(interp, "outputs")) or {
            str(d["name"]): str(int(d["index"])) for d in outs
        }
        producer: dict[int, int] = {}
        consumers: dict[int, list[int]] = {}
        edges: dict[str, list[str]] = {}
        for op in ops:
            for o in op["outputs"]:
                producer[int(o)] = int(op["index"])
            for i in op["inputs"]:
                if int(i) >= 0:
                    consumers.setdefault(int(i), []).append(int(op["index"]))
                    edges.setdefault(str(int(i)), []).extend(str(int(o)) for o in op["outputs"])
        op_by_index = {int(op["index"]): op for op in ops}
        live = _reachable([str(int(d["index"])) for d in ins], edges)
        self.tensors: list[Tensor] = []
        self.constants: list[dict[str, Any]] = []
        for d in details:
            idx = int(d["index"])
            if str(idx) not in live and np.dtype(d["dtype"]).name in ("int8", "uint8") and idx not in producer:
                self.constants.append(_constant(str(d["name"]), d["shape"], d.get("quantization_parameters") or {}))
            dtype = np.dtype(d["dtype"]).name
            if str(idx) not in live or dtype not in ("float32", "float16", *QUANT_DTYPES):
                continue
            qp = d.get("quantization_parameters") or {}
            scales = np.asarray(qp.get("scales", []))
            zps = np.asarray(qp.get("zero_points", []))
            quantized = dtype in QUANT_DTYPES and scales.size == 1
            t = Tensor(
                key=str(idx),
                name=str(d["name"]) or f"#{idx}",
                shape=tuple(int(s) for s in d["shape"][1:]),
                order=producer.get(idx, -1),
                dtype=dtype,
                read=str(idx),
                scale=float(scales[0]) if quantized else None,
                zero_point=int(zps[0]) if quantized and zps.size else (0 if quantized else None),
                qdtype=dtype if quantized else None,
                layout="NHWC" if len(d["shape"]) == 4 else None,  # TFLite is NHWC throughout
            )
            if idx in producer:
                t.inputs = tuple(str(int(i)) for i in op_by_index[producer[idx]]["inputs"] if str(int(i)) in live)
                t.op = str(op_by_index[producer[idx]]["op_name"])
            # The op consuming it, through (DE)QUANTIZE: is it an activation?
            cur = idx
            for _ in range(3):
                cons = consumers.get(cur, [])
                if len(cons) != 1:
                    break
                op = op_by_index[cons[0]]
                kind = str(op["op_name"]).lower().replace("_", "")
                if kind in ("quantize", "dequantize"):
                    cur = int(op["outputs"][0])
                    continue
                if kind in ACTIVATION_OPS:
                    t.next_op, t.next_key = ACTIVATION_OPS[kind], str(int(op["outputs"][0]))
                break
            self.tensors.append(t)
        self.tensors.sort(key=lambda t: (t.order, int(t.key)))

    def _interpreter(self, *, preserve: bool, batch: int | None = None) -> Any:
        kwargs: dict[str, Any] = {"model_path": str(self.path), "num_threads": 1}
        if preserve:
            kwargs["experimental_preserve_all_tensors"] = True
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "preserve_all_tensors is intended for debugging"
            interp = self.module.Interpreter(**kwargs)
        if batch is not None:
            for d in interp.get_input_details():
                interp.resize_tensor_input(d["index"], [batch, *[int(s) for s in d["shape"][1:]]], strict=False)
        interp.allocate_tensors()
        return interp

    def _feed(self, interp: Any, feeds: dict[str, np.ndarray]) -> None:
        """Set each input (`feeds` keyed by tensor index), quantizing a float batch for an integer input."""
        for d in interp.get_input_details():
            batch = feeds[str(int(d["index"]))]
            scale, zp = d["quantization"]
            data: np.ndarray = batch
            if np.dtype(d["dtype"]).kind in "iu" and scale:
                info = np.iinfo(d["dtype"])
                data = np.clip(np.rint(batch / scale + zp), info.min, info.max).astype(d["dtype"])
            interp.set_tensor(d["index"], data)

    def feeds_by_key(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """`feeds` keyed by input tensor key (one array: the first input's)."""
        if isinstance(feeds, dict):
            return {self.input_keys[name]: v for name, v in feeds.items()}
        return {str(self.input_index): feeds}

    def _read(self, interp: Any, index: int) -> np.ndarray:
        d = next(t for t in interp.get_tensor_details() if int(t["index"]) == index)
        scale, zp = d["quantization"]
        q = np.array(interp.get_tensor(index))
        return _dequantize(q, scale or None, zp) if q.dtype.kind in "iu" else q.astype(np.float32)

    def capture(self, keys: list[str], images: Feeds) -> Capture:
        from runtimes.capture import native_output

        cap = Capture(self.tensors)
        keys = list(dict.fromkeys(keys))
        feeds = self.feeds_by_key(images)
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        outs: dict[str, list[np.ndarray]] = {name: [] for name in self.output_keys}
        plain: dict[str, list[np.ndarray]] = {name: [] for name in self.output_keys}
        n = len(next(iter(feeds.values())))
        step = self.fixed_batch or CHUNK
        made: dict[tuple[bool, int], Any] = {}  # interpreters by (preserve, batch), reused across the chunks

        def interpreter(preserve: bool, size: int) -> Any:
            if (preserve, size) not in made:
                made[(preserve, size)] = self._interpreter(preserve=preserve, batch=None if self.fixed_batch else size)
            return made[(preserve, size)]

        with native_output():
            for i in range(0, n, step):
                batch = {k: np.ascontiguousarray(v[i : i + step]) for k, v in feeds.items()}
                size = len(next(iter(batch.values())))
                interp = interpreter(True, size)
                self._feed(interp, batch)
                interp.invoke()
                for k in keys:
                    parts[k].append(self._read(interp, int(k)))
                for name, key in self.output_keys.items():
                    outs[name].append(self._read(interp, int(key)))
                interp = interpreter(False, size)
                self._feed(interp, batch)
                interp.invoke()
                for name, key in self.output_keys.items():
                    plain[name].append(self._read(interp, int(key)))
        cap.values = {k: np.concatenate(v) for k, v in parts.items()}
        cap.outputs = {k: np.concatenate(v) for k, v in outs.items()}
        cap.plain_outputs = {k: np.concatenate(v) for k, v in plain.items()}
        first = next(name for name, key in self.output_keys.items() if int(key) == self.output_index)
        cap.probs, cap.plain_probs = cap.outputs[first], cap.plain_outputs[first]
        cap.notes.append(
            f"{self.backend} interpreter with experimental_preserve_all_tensors=True and the default op resolver"
        )
        return cap


# -- ONNX --------------------------------------------------------------------------------------------
class OnnxGraph:
    """An `.onnx` file whose intermediate tensors are added as graph outputs."""

    def __init__(self, path: Path, *, half: bool = False) -> None:
        """`half`: also probe float16 tensors (an fp16 export of an ONNX source keeps its names, in float16)."""
        import onnx
        from onnx import numpy_helper

        self.path = path
        self.model = onnx.load(str(path))
        graph = self.model.graph
        inits = {i.name: i for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in inits]
        self.input_name = self.input_names[0]
        self.output_name = graph.output[0].name
        self.input_keys = {name: name for name in self.input_names}
        self.output_keys = {o.name: o.name for o in graph.output}
        producer: dict[str, tuple[int, str]] = {}
        consumers: dict[str, list[int]] = {}
        edges: dict[str, list[str]] = {}
        for n, node in enumerate(graph.node):
            for o in node.output:
                if o:
                    producer[o] = (n, node.op_type)
            for i in node.input:
                if i:
                    consumers.setdefault(i, []).append(n)
                    edges.setdefault(i, []).extend(o for o in node.output if o)
        live = _reachable(self.input_names, edges)
        # Shapes and dtypes from one probe run with every live value as an output.
        probe_batch = 3
        names = [*self.input_names] + [o for node in graph.node for o in node.output if o in live]
        probe = {name: _probe_input(self.model, name, probe_batch) for name in self.input_names}
        shapes = self._run(list(dict.fromkeys(names)), probe)
        layouts = _onnx_layouts(graph, self.input_names, shapes)
        self.tensors = []
        # Quantized constants (weights, a Normalization's divisor): how many scales each holds.
        self.constants: list[dict[str, Any]] = []
        for node in graph.node:
            if node.op_type == "DequantizeLinear" and node.input[0] in inits and node.input[1] in inits:
                q = numpy_helper.to_array(inits[node.input[0]])
                if q.dtype.kind in "iu" and q.dtype.itemsize == 1:
                    scales = numpy_helper.to_array(inits[node.input[1]]).reshape(-1)
                    self.constants.append(_constant(node.input[0], q.shape, {"scales": scales}))
        for name in dict.fromkeys(names):
            arr = shapes.get(name)
            floats = (np.float32, np.float16) if half else (np.float32,)
            if arr is None or arr.ndim < 1 or arr.shape[0] != probe_batch or arr.dtype not in floats:
                continue
            op = producer.get(name, (-1, ""))
            if op[1] in ("QuantizeLinear", "DequantizeLinear"):
                continue
            t = Tensor(name, name, tuple(int(s) for s in arr.shape[1:]), op[0], arr.dtype.name, name)
            t.layout = layouts.get(name)
            t.op = op[1]
            if op[0] >= 0:
                srcs = (_through_qdq(i, graph, producer) for i in graph.node[op[0]].input if i)
                t.inputs = tuple(dict.fromkeys(i for i in srcs if i in live))
            cons = consumers.get(name, [])
            if len(cons) == 1 and graph.node[cons[0]].op_type == "QuantizeLinear":
                q = graph.node[cons[0]]
                if len(q.input) >= 3 and q.input[1] in inits and q.input[2] in inits:
                    scale = numpy_helper.to_array(inits[q.input[1]])
                    zp = numpy_helper.to_array(inits[q.input[2]])
                    if scale.size == 1:
                        t.read, t.scale, t.zero_point = q.output[0], float(scale.item()), int(zp.item())
                        t.qdtype = zp.dtype.name
            # The next compute op, through a QuantizeLinear → DequantizeLinear pair.
            cur = name
            for _ in range(3):
                cs = consumers.get(cur, [])
                if len(cs) != 1:
                    break
                node = graph.node[cs[0]]
                if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                    cur = node.output[0]
                    continue
                kind = node.op_type.lower()
                if kind in ACTIVATION_OPS:
                    t.next_op, t.next_key = ACTIVATION_OPS[kind], node.output[0]
                break
            self.tensors.append(t)

    def _session(self, outputs: list[str]) -> Any:
        import onnx
        import onnxruntime as ort

        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        existing = {o.name for o in model.graph.output}
        for name in outputs:
            if name not in existing and name not in self.input_keys:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
                existing.add(name)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def _run(self, names: list[str], feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sess = self._session(names)
        wanted = [o.name for o in sess.get_outputs()]
        values = dict(zip(wanted, sess.run(wanted, feeds), strict=True))
        values.update(feeds)
        return values

    def feeds_by_key(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """`feeds` keyed by graph input name (one array: the first input's)."""
        return dict(feeds) if isinstance(feeds, dict) else {self.input_name: feeds}

    def capture(self, keys: list[str], images: Feeds) -> Capture:
        by_read = {t.read: t for t in self.tensors}
        reads = list(dict.fromkeys(keys))
        feeds = self.feeds_by_key(images)
        sess = self._session([r for r in reads if r not in feeds])
        plain = self._session([])
        wanted = [o.name for o in sess.get_outputs()]
        parts: dict[str, list[np.ndarray]] = {k: [] for k in reads}
        outs: dict[str, list[np.ndarray]] = {name: [] for name in self.output_keys}
        plain_outs: dict[str, list[np.ndarray]] = {name: [] for name in self.output_keys}
        n = len(next(iter(feeds.values())))
        for i in range(0, n, CHUNK):
            batch = {k: np.ascontiguousarray(v[i : i + CHUNK]) for k, v in feeds.items()}
            values = dict(zip(wanted, sess.run(wanted, batch), strict=True))
            values.update(batch)
            for k in reads:
                t = by_read.get(k)
                parts[k].append(_dequantize(np.asarray(values[k]), t.scale if t else None, t.zero_point if t else None))
            names = list(self.output_keys)
            for name, got in zip(names, plain.run(names, batch), strict=True):
                outs[name].append(np.asarray(values[name], dtype=np.float32))
                plain_outs[name].append(np.asarray(got, np.float32))
        cap = Capture(self.tensors)
        cap.values = {k: np.concatenate(v) for k, v in parts.items()}
        cap.outputs = {k: np.concatenate(v) for k, v in outs.items()}
        cap.plain_outputs = {k: np.concatenate(v) for k, v in plain_outs.items()}
        cap.probs, cap.plain_probs = cap.outputs[self.output_name], cap.plain_outputs[self.output_name]
        cap.notes.append("onnxruntime CPU session with the probed tensors appended to the graph outputs")
        return cap


def _constant(name: str, shape: Any, qp: dict[str, Any]) -> dict[str, Any]:
    scales = np.asarray(qp.get("scales", [])).reshape(-1)
    return {
        "name": name,
        "shape": [int(d) for d in shape],
        "scales": int(scales.size),
        "scale": float(scales[0]) if scales.size == 1 else None,
    }


def _probe_input(model: Any, name: str, batch: int) -> np.ndarray:
    inp = next(i for i in model.graph.input if i.name == name)
    dims = [d.dim_value if d.dim_value > 0 else batch for d in inp.type.tensor_type.shape.dim]
    dims[0] = batch
    return np.random.default_rng(0).random(dims, dtype=np.float32)


def _through_qdq(name: str, graph: Any, producer: dict[str, tuple[int, str]]) -> str:
    """The float tensor behind a DequantizeLinear(QuantizeLinear(x)) chain (or `name` itself)."""
    for _ in range(4):
        op = producer.get(name)
        if op is None or op[1] not in ("QuantizeLinear", "DequantizeLinear"):
            break
        name = graph.node[op[0]].input[0]
    return name


def _onnx_layouts(graph: Any, input_names: list[str], shapes: dict[str, np.ndarray]) -> dict[str, str]:
    """NHWC/NCHW for every rank-4 value: tf2onnx's Transposes flip it, other ops keep their input's."""
    from onnx import helper

    layouts = {n: "NHWC" for n in input_names if shapes.get(n) is not None and shapes[n].ndim == 4}
    for node in graph.node:
        known = next((layouts[i] for i in node.input if i in layouts), None)
        if node.op_type == "Transpose":
            perm = next((list(helper.get_attribute_value(a)) for a in node.attribute if a.name == "perm"), None)
            known = {(0, 3, 1, 2): "NCHW", (0, 2, 3, 1): "NHWC"}.get(tuple(perm or ()))
        elif node.op_type == "Reshape" and known:
            # tf2onnx turns a 1-channel NHWC tensor into NCHW with a Reshape: compare the shapes.
            src, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if src is None or out is None or src.ndim != 4 or out.ndim != 4:
                known = None
            elif src.shape != out.shape:
                flipped = {"NHWC": "NCHW", "NCHW": "NHWC"}[known]
                to_nchw = out.shape == (src.shape[0], src.shape[3], src.shape[1], src.shape[2])
                to_nhwc = out.shape == (src.shape[0], src.shape[2], src.shape[3], src.shape[1])
                want = to_nchw if known == "NHWC" else to_nhwc
                known = flipped if want else None
        for o in node.output:
            arr = shapes.get(o)
            if known and (arr is None or arr.ndim == 4):
                layouts[o] = known
    return layouts
