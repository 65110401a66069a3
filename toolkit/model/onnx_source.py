"""An ONNX file as the source (`--model model.onnx`): check it, and import it into a run as `model.onnx`.

The reference is the file itself on ONNX Runtime in fp32: no Keras, no training. What edgekit takes from an
ONNX file: float32 inputs, each an image `[N, C, H, W]` or `[N, H, W, C]` (the layout is read from the shape,
and from the data when the shape cannot tell) or a vector `[N, F]`, with a dynamic batch axis; float32 outputs
`[N, K]` (probabilities, logits or values). With several inputs or outputs (fed and judged by name from an
`.npz`, `toolkit.data.named`) an output may also be boxes `[N, K, 4]` or integer class indices `[N]` (as
skl2onnx's `label` beside its `probabilities` with `zipmap=False`); each output's kind is read from the file
as a Keras model's is (`runtimes.spec.guess_kind`). Everything else is refused in one line before anything is
written: other dtypes (strings, sequences and maps such as scikit-learn's ZipMap), external data that is
missing, a file that is already quantized, a batch fixed at 1 with several tensors.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from toolkit.model.file_source import (
    FileSourceError,
    SourceTensor,
    checked_output_width,
    has_suffix,
    layout_from_shapes,
    layout_reason_for,
    single_output_kind,
    source_document,
)

if TYPE_CHECKING:
    import numpy as np

    from runtimes.spec import ModelSpec
    from toolkit.data.dataset import Dataset
    from toolkit.run.documents import ModelDocument

ONNX_SUFFIXES: Final = (".onnx",)
# Nodes that only a quantized graph holds: a quantized file is an artifact, not a reference to quantize again.
QUANTIZED_OPS: Final = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QGemm",
        "MatMulInteger",
        "ConvInteger",
        "MatMulNBits",
    }
)
# onnx.TensorProto element types by number (the onnx package is imported lazily).
_ELEM_NAMES: Final = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "string",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}
# float32, float16, float64, bfloat16: the element types of weights.
_FLOAT_TYPES: Final = frozenset({1, 10, 11, 16})
# Nodes that hand their input on unchanged: a Softmax before them still makes the output probabilities.
_PASS_THROUGH: Final = frozenset({"Identity", "Cast"})


class OnnxSourceError(FileSourceError):
    """The ONNX file cannot be taken as a run's source (one line: what and how to fix it)."""


def is_onnx_source(path: Path | str | None) -> bool:
    """True when `--model` names an ONNX file (by suffix: the file is checked later)."""
    return has_suffix(path, ONNX_SUFFIXES)


@dataclass(frozen=True)
class OnnxSource:
    """A checked ONNX file: its tensors (one or several inputs and outputs), opsets and node count."""

    path: Path
    inputs: tuple[SourceTensor, ...]
    outputs: tuple[SourceTensor, ...]
    opset: int
    producer: str
    nodes: tuple[tuple[str, str], ...]  # (name, op_type)
    params: int
    softmax_output: bool  # the output is made by a Softmax node
    external_data: bool  # weights in files beside the .onnx (the run keeps one self-contained copy)
    batch_one: bool = False  # the file fixes the batch at 1: the run's copy gets a dynamic batch axis instead
    softmax_outputs: tuple[bool, ...] = ()  # per output: made by a Softmax node (the kind is probabilities)

    @property
    def is_single(self) -> bool:
        """One input and one output (the only shape edgekit took before several tensors)."""
        return len(self.inputs) == 1 and len(self.outputs) == 1


def load_onnx_source(path: Path | str) -> OnnxSource:
    """Read and check `path` as an ONNX model edgekit can take as a source; write nothing.

    Raises:
        OnnxSourceError: a missing or unreadable file, a model onnx.checker refuses, missing external data, a
            quantized file, or tensors of a type edgekit cannot feed (one line).
    """
    import onnx
    from onnx import external_data_helper

    path = Path(path).expanduser()
    if not path.is_file():
        raise OnnxSourceError(f"model {path} not found; give an .onnx file.")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not a protobuf
        raise OnnxSourceError(
            f"{path} could not be read as an ONNX model ({type(exc).__name__}); give an .onnx file."
        ) from None
    external = [t for t in _all_tensors(proto) if external_data_helper.uses_external_data(t)]
    for tensor in external:
        info = {e.key: e.value for e in tensor.external_data}
        location = path.parent / info.get("location", "")
        if not info.get("location") or not location.is_file():
            raise OnnxSourceError(
                f"{path} keeps tensor {tensor.name!r} in external data {info.get('location', '?')!r}, which is not "
                f"beside it in {path.parent}; copy the data file(s) there with the .onnx."
            )
    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as exc:  # ValidationError, or an opset the installed onnx does not know
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OnnxSourceError(f"{path} fails onnx.checker: {first}") from None
    graph = proto.graph
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset > onnx.defs.onnx_opset_version():
        raise OnnxSourceError(_too_new(path, opset, onnx.defs.onnx_opset_version()))
    quantized = sorted({n.op_type for n in graph.node if n.op_type in QUANTIZED_OPS})
    if quantized:
        raise OnnxSourceError(
            f"{path} is already quantized ({', '.join(quantized)} nodes); give the fp32 model it was made from: "
            "edgekit makes the quantized artifacts and compares them with the fp32 reference."
        )
    initializers = {t.name for t in graph.initializer}
    graph_inputs = [v for v in graph.input if v.name not in initializers]
    # A value that is not a tensor (ZipMap's maps) is named first: its fix also changes the outputs' count.
    for value, what in [*((v, "input") for v in graph_inputs), *((v, "output") for v in graph.output)]:
        _check_tensor(value, path, what)
    if not graph_inputs:
        raise OnnxSourceError(f"{path} has no inputs (every graph input is a weight); give a model that takes data.")
    inputs = tuple(_tensor(v, path, "input") for v in graph_inputs)
    # With several outputs an integer one is class indices (skl2onnx's `label` beside its probabilities).
    outputs = tuple(_tensor(v, path, "output", indices=len(graph.output) > 1) for v in graph.output)
    # PyTorch's default export fixes the batch at 1: taken as dynamic, if the graph runs so (prepare_onnx checks).
    batch_one = bool(inputs[0].shape) and inputs[0].shape[0] == 1
    if batch_one and (len(inputs) > 1 or len(outputs) > 1):
        raise OnnxSourceError(
            f"{path}: input {inputs[0].name!r} has a fixed batch of 1 {_text(inputs[0].shape)}; a model with several "
            "inputs/outputs needs a dynamic batch axis: export it with one (torch.onnx.export(..., "
            "dynamic_axes={'<input>': {0: 'N'}}) or dynamic_shapes)."
        )
    if batch_one:
        inputs = tuple(SourceTensor(t.name, (None, *t.shape[1:]), t.dtype) for t in inputs)
        outputs = tuple(SourceTensor(t.name, (None, *t.shape[1:]) if t.shape else t.shape, t.dtype) for t in outputs)
    producers = {o: n for n in graph.node for o in n.output}
    softmax = tuple(_made_by_softmax(producers, t.name) for t in outputs)
    # Weights only: exporters also store integer constants (e.g. a Reshape's target shape) as initializers.
    params = sum(_size(t) for t in graph.initializer if t.data_type in _FLOAT_TYPES)
    return OnnxSource(
        path=path,
        inputs=inputs,
        outputs=outputs,
        opset=int(opset),
        producer=" ".join(p for p in (proto.producer_name, proto.producer_version) if p) or "unknown",
        nodes=tuple((n.name or f"{n.op_type}_{i}", n.op_type) for i, n in enumerate(graph.node)),
        params=params,
        softmax_output=softmax[0],
        softmax_outputs=softmax,
        external_data=bool(external),
        batch_one=batch_one,
    )


def _made_by_softmax(producers: dict[str, Any], name: str) -> bool:
    last = producers.get(name)
    while last is not None and last.op_type in _PASS_THROUGH and last.input:
        last = producers.get(last.input[0])  # skl2onnx ends its probabilities with an Identity after the Softmax
    return last is not None and last.op_type == "Softmax"


def check_onnx_source(
    source: OnnxSource,
    sample_shape: tuple[int, ...] | None,
    *,
    output_kind: str | None,
    sample_shapes: dict[str, tuple[int, ...]] | None = None,
) -> ModelSpec:
    """The ModelSpec of the checked file; `sample_shape` (one data row's shape) decides an image layout the input
    shape leaves open (`sample_shapes`, by input name, for several inputs). Raises OnnxSourceError for shapes
    edgekit cannot run."""
    from runtimes.spec import SpecError, TensorSpec, spec_from_tensors

    if not source.is_single:
        return _several_spec(source, sample_shapes, output_kind)
    inp, out = source.inputs[0], source.outputs[0]
    path = source.path
    layout = _input_layout(path, inp, sample_shape)
    if len(out.shape) != 2:
        raise OnnxSourceError(
            f"{path}: output {out.name!r} has shape {_text(out.shape)}; edgekit takes [N, K] outputs."
        )
    output_kind = single_output_kind(output_kind, source.softmax_output, out.shape[1], OnnxSourceError)
    try:
        return spec_from_tensors(
            TensorSpec(inp.name, inp.shape, "float32"),
            TensorSpec(out.name, (None, out.shape[1]), "float32"),
            output_kind=output_kind,
            layout=layout,
        )
    except SpecError as exc:
        raise OnnxSourceError(f"{path}: {exc}") from None


def _input_layout(path: Path, inp: SourceTensor, sample_shape: tuple[int, ...] | None) -> str:
    """One input's layout (NC, NCHW or NHWC), after refusing shapes edgekit cannot feed."""
    if len(inp.shape) not in (2, 4):
        raise OnnxSourceError(
            f"{path}: input {inp.name!r} has shape {_text(inp.shape)}; edgekit takes an image [N, C, H, W] or "
            "[N, H, W, C] or a vector [N, F]."
        )
    if inp.shape[0] is not None:
        raise OnnxSourceError(
            f"{path}: input {inp.name!r} has a fixed batch of {inp.shape[0]} {_text(inp.shape)}; export it with a "
            "dynamic batch axis (torch.onnx.export(..., dynamic_axes={'<input>': {0: 'N'}}) or dynamic_shapes)."
        )
    if any(d is None for d in inp.shape[1:]):
        raise OnnxSourceError(
            f"{path}: input {inp.name!r} has dynamic sizes {_text(inp.shape)}; exports and benchmarks need fixed "
            "sizes: export it with a fixed height, width and channel count (only the batch axis dynamic)."
        )
    return "NC" if len(inp.shape) == 2 else layout_from_shapes(inp.shape, sample_shape, default="NCHW")


def _several_spec(
    source: OnnxSource, sample_shapes: dict[str, tuple[int, ...]] | None, output_kind: str | None
) -> ModelSpec:
    """The spec of a file with several inputs or outputs: each input as a single one is checked (its layout from
    its shape, else its data), each output's kind read from the file as a Keras model's is (a Softmax ->
    probabilities, an integer output -> class_indices, (N, K, 4) or a "box" name -> boxes, width 1 -> values,
    else logits). Output sizes the file leaves dynamic stay None until `prepare_onnx` runs it."""
    from runtimes.spec import ModelSpec, SpecError, TensorSpec, guess_kind

    path = source.path
    if output_kind is not None:
        raise OnnxSourceError(
            f"--output-kind names the kind of one output; {path.name} has {_count(source)}, whose kinds edgekit "
            "reads from the file: leave it out."
        )
    inputs = [
        TensorSpec(t.name, t.shape, "float32", layout=_input_layout(path, t, (sample_shapes or {}).get(t.name)))
        for t in source.inputs
    ]
    outputs = []
    softmax = source.softmax_outputs or (False,) * len(source.outputs)
    for tensor, by_softmax in zip(source.outputs, softmax, strict=True):
        if not tensor.shape or tensor.shape[0] is not None:
            raise OnnxSourceError(
                f"{path}: output {tensor.name!r} has shape {_text(tensor.shape)}; edgekit takes outputs with a "
                "dynamic batch axis first ([N], [N, K] or [N, K, 4])."
            )
        kind = guess_kind(tensor.name, tensor.shape, tensor.dtype, "softmax" if by_softmax else None)
        outputs.append(TensorSpec(tensor.name, tensor.shape, tensor.dtype, kind=kind))
    try:
        return ModelSpec(inputs=inputs, outputs=outputs)
    except SpecError as exc:
        raise OnnxSourceError(f"{path}: {str(exc).removeprefix('model spec: ')}") from None


def _count(source: OnnxSource) -> str:
    def part(tensors: tuple[SourceTensor, ...], word: str) -> str:
        return f"{len(tensors)} {word}{'' if len(tensors) == 1 else 's'} ({', '.join(t.name for t in tensors)})"

    return f"{part(source.inputs, 'input')} and {part(source.outputs, 'output')}"


def output_width(path: Path, spec: ModelSpec | None, rows: np.ndarray) -> int:
    """Run the file on a few data rows with ONNX Runtime (fp32): the output width, after checking the outputs are
    finite and one row per input row (the file loads and runs before anything is written)."""
    import numpy as np

    from runtimes.errors import EdgekitError
    from runtimes.ort_runner import OnnxRuntimeRunner

    try:
        with OnnxRuntimeRunner(path) as runner:
            out = runner.infer(np.ascontiguousarray(rows, dtype=np.float32))
    except EdgekitError as exc:
        newest = re.search(r"domain ai\.onnx is till opset (\d+)", str(exc))
        if newest is not None:  # the installed onnx knows the opset, onnxruntime does not yet
            raise OnnxSourceError(_too_new(path, _opset_of(path), int(newest.group(1)))) from None
        raise OnnxSourceError(str(exc)) from None
    return checked_output_width(path, out, len(rows), OnnxSourceError)


def prepare_onnx(
    path: Path,
    dataset_for: Any,
    *,
    output_kind: str | None,
) -> tuple[OnnxSource, ModelSpec, Dataset]:
    """Check the ONNX file with its data: (the source, its spec with the data's range and classes, the dataset).

    `dataset_for(spec)` loads the data for a spec (`load_dataset`), so the data is read once the input is known.
    """
    from dataclasses import replace

    import numpy as np

    source = load_onnx_source(path)
    provisional = check_onnx_source(source, None, output_kind=output_kind)
    dataset = dataset_for(provisional)
    if not source.is_single:
        return _prepare_several(source, dataset)
    spec = check_onnx_source(source, tuple(np.asarray(dataset.x_test).shape[1:]), output_kind=output_kind)
    rows = dataset.inputs(dataset.x_test[:2], spec)
    width = _check_dynamic_batch(source, rows) if source.batch_one else output_width(source.path, spec, rows)
    if spec.output.shape[1] is None:
        spec = spec.with_tensors(outputs=[replace(spec.output, shape=(None, width))])
    elif width != spec.output.shape[1]:
        raise OnnxSourceError(f"{path} declares {spec.output.shape[1]} outputs but gives {width}.")
    return source, spec, dataset


def _prepare_several(source: OnnxSource, dataset: Dataset) -> tuple[OnnxSource, ModelSpec, Dataset]:
    """`prepare_onnx` for several inputs or outputs: each input's layout from its data rows where its shape cannot
    tell, then the file run on two rows of every input: its outputs must be finite, one row per input row, of
    the declared ranks; sizes the file leaves dynamic are taken from them (and the kinds read again)."""
    from dataclasses import replace

    from toolkit.data.named import NamedDataset, input_feed

    if not isinstance(dataset, NamedDataset):  # _prepare_file loads named data for several tensors
        raise OnnxSourceError(f"{source.path} has {_count(source)}; give --data an .npz keyed by those names.")
    shapes = {t.name: tuple(dataset.train_arrays[t.name].shape[1:]) for t in source.inputs}
    spec = check_onnx_source(source, None, output_kind=None, sample_shapes=shapes)
    feeds = {
        t.name: input_feed(dataset.test_arrays[t.name][:2], t, dataset.scale, f"{dataset.name}'s {t.name!r}")
        for t in spec.inputs
    }
    outs = _run_named(source.path, feeds)
    rows = len(next(iter(feeds.values())))
    filled = []
    for tensor in source.outputs:
        out = outs[tensor.name]
        if out.ndim != len(tensor.shape) or out.shape[0] != rows or not _finite(out):
            raise OnnxSourceError(
                f"{source.path} gives {tensor.name!r} of shape {tuple(out.shape)} (finite: {_finite(out)}) for "
                f"{rows} rows of its data; expected finite outputs of shape {_text(tensor.shape)}."
            )
        declared = [d for d in tensor.shape[1:] if d is not None]
        if declared != [d for d, s in zip(out.shape[1:], tensor.shape[1:], strict=True) if s is not None]:
            raise OnnxSourceError(
                f"{source.path} declares {tensor.name!r} as {_text(tensor.shape)} but gives {out.shape}."
            )
        filled.append(replace(tensor, shape=(None, *(int(d) for d in out.shape[1:]))))
    source = replace(source, outputs=tuple(filled))
    return source, check_onnx_source(source, None, output_kind=None, sample_shapes=shapes), dataset


def _finite(out: np.ndarray) -> bool:
    import numpy as np

    return not np.issubdtype(out.dtype, np.floating) or bool(np.all(np.isfinite(out)))


def _run_named(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every output of the file on `feeds` with ONNX Runtime (fp32), or its error as a one-line refusal."""
    import numpy as np
    import onnxruntime as ort

    from runtimes.errors import one_line

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing node logs to stderr besides raising: the refusal is one line
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return {n: np.asarray(v) for n, v in zip(names, session.run(names, feeds), strict=True)}
    except Exception as exc:  # ORT's own Fail/InvalidArgument/NotImplemented classes
        newest = re.search(r"domain ai\.onnx is till opset (\d+)", str(exc))
        if newest is not None:
            raise OnnxSourceError(_too_new(path, _opset_of(path), int(newest.group(1)))) from None
        raise OnnxSourceError(f"{path} could not be run with ONNX Runtime: {one_line(exc)}") from None


def with_dynamic_batch(proto: Any) -> Any:
    """`proto` with the batch axis of its graph inputs and outputs made dynamic (`N`) where it is fixed at 1, and
    the intermediate shapes shape inference stored dropped (they carry the fixed batch)."""
    for value in (*proto.graph.input, *proto.graph.output):
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].Clear()
            dims[0].dim_param = "N"
    del proto.graph.value_info[:]
    return proto


def _check_dynamic_batch(source: OnnxSource, rows: np.ndarray) -> int:
    """Run the batch-1 file with a dynamic batch axis on `rows` (two of them) and compare each row with the file
    itself at batch 1: the output width, or a one-line refusal when the graph holds the batch of 1 elsewhere (a
    Reshape to [1, ...], a batch-1 constant)."""
    import tempfile

    import numpy as np
    import onnx

    inp = source.inputs[0]
    refuse = (
        f"{source.path}: input {inp.name!r} has a fixed batch of 1 and the graph does not run at another batch "
        "({why}); export it with a dynamic batch axis (torch.onnx.export(..., dynamic_axes={{'<input>': {{0: 'N'}}}})"
        " or dynamic_shapes)."
    )
    x = np.ascontiguousarray(rows, dtype=np.float32)
    width = output_width(source.path, None, x[:1])  # the file as it is first: its own errors come first
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-batch-") as work:
        dynamic = Path(work) / "dynamic.onnx"
        onnx.save_model(with_dynamic_batch(onnx.load(str(source.path))), str(dynamic), save_as_external_data=False)
        single = np.concatenate([_run_quietly(source.path, x[i : i + 1]) for i in range(len(x))])
        try:
            batched = _run_quietly(dynamic, x)
        except Exception as exc:  # ORT's Fail/InvalidArgument: the node that holds the batch of 1, if it says
            node = re.search(r"running (\w+) node\. Name:'([^']*)'", str(exc))
            why = f"its {node.group(1)} node {node.group(2)!r} fails on 2 rows" if node else type(exc).__name__
            raise OnnxSourceError(refuse.format(why=why)) from None
    scale = float(np.abs(single).max()) or 1.0
    if batched.shape != single.shape or not np.allclose(batched, single, rtol=1e-4, atol=1e-5 * scale):
        raise OnnxSourceError(refuse.format(why=f"{len(x)} rows at once give other outputs than one at a time"))
    return width


def _run_quietly(path: Path, x: np.ndarray) -> np.ndarray:
    """The file's first output on `x` with ONNX Runtime, its own error log silenced (the caller reports)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing node logs to stderr besides raising: the refusal is one line
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    run_options = ort.RunOptions()
    run_options.log_severity_level = 4
    out = session.run(None, {session.get_inputs()[0].name: x}, run_options)[0]
    return np.asarray(out, dtype=np.float32)


def save_onnx_into_run(source: OnnxSource, run_dir: Path, spec: ModelSpec, layout_from: str) -> ModelDocument:
    """Copy the checked file into `run_dir` as model.onnx (weights in external files: one self-contained copy);
    return what model.json records (not written here)."""
    import onnx

    from runtimes.files import atomic_path
    from toolkit.run import layout as A

    run_dir.mkdir(parents=True, exist_ok=True)
    dest = run_dir / A.ONNX_MODEL_FILE
    with atomic_path(dest) as tmp:
        if source.batch_one:
            onnx.save_model(with_dynamic_batch(onnx.load(str(source.path))), str(tmp), save_as_external_data=False)
        elif source.external_data:
            onnx.save_model(onnx.load(str(source.path)), str(tmp), save_as_external_data=False)
        else:
            shutil.copyfile(source.path, tmp)
    return source_document(
        source.path,
        dest,
        "onnx",
        params=source.params,
        layers=source.nodes,
        spec=spec,
        layout_from=layout_from,
        opset=source.opset,
        producer=source.producer,
    )


def layout_reason(source: OnnxSource, sample_shape: tuple[int, ...]) -> str:
    """How the run's image layout was decided, for model.json: `input shape`, `data` or `assumed`."""
    return layout_reason_for(source.inputs[0].shape, sample_shape)


def _too_new(path: Path, opset: int, limit: int) -> str:
    return (
        f"{path} uses ONNX opset {opset}, newer than the installed onnx/onnxruntime support (up to opset {limit}); "
        f"export it with opset_version={limit} or lower (or convert it: onnx.version_converter.convert_version)."
    )


def _check_tensor(value: Any, path: Path, what: str) -> None:
    """Refuse a graph input or output that is not a tensor (a sequence, a map: scikit-learn's ZipMap)."""
    kind = value.type.WhichOneof("value")
    if kind == "tensor_type":
        return
    hint = (
        " (scikit-learn's ZipMap: convert with zipmap=False, skl2onnx.to_onnx(model, X, options={'zipmap': False}))"
        if kind in ("sequence_type", "map_type")
        else ""
    )
    raise OnnxSourceError(
        f"{path}: {what} {value.name!r} is a {kind.replace('_type', '') if kind else 'typeless value'}, not a "
        f"tensor{hint}; edgekit takes float32 tensors."
    )


def _tensor(value: Any, path: Path, what: str, *, indices: bool = False) -> SourceTensor:
    _check_tensor(value, path, what)
    elem = _ELEM_NAMES.get(value.type.tensor_type.elem_type, f"type {value.type.tensor_type.elem_type}")
    if elem != "float32" and not (indices and elem in ("int32", "int64")):  # integers: class indices
        raise OnnxSourceError(
            f"{path}: {what} {value.name!r} has dtype {elem}; edgekit takes float32 {what}s{_dtype_fix(elem, what)}."
        )
    dims = value.type.tensor_type.shape.dim if value.type.tensor_type.HasField("shape") else []
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims)
    return SourceTensor(value.name, shape, elem)


def _opset_of(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _dtype_fix(elem: str, what: str) -> str:
    """How to give edgekit a float32 tensor instead of `elem` (empty when no general fix exists)."""
    if elem in ("float16", "bfloat16"):
        return ": give the fp32 model it was converted from (edgekit makes the fp16 artifact itself)"
    if elem in ("uint8", "int8") and what == "input":
        return ": export it with a float32 input (edgekit feeds uint8 pixels as floats; --input-scale rescales them)"
    return ""


def _all_tensors(proto: Any) -> list[Any]:
    """The main graph's initializers and the tensors its nodes hold as attributes (Constant values)."""
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    return tensors


def _size(tensor: Any) -> int:
    n = 1
    for d in tensor.dims:
        n *= int(d)
    return n


def _text(shape: tuple[int | None, ...]) -> str:
    """`[N, 3, ?, ?]`: N a dynamic batch axis, ? another dynamic size."""
    return "[" + ", ".join(("N" if i == 0 else "?") if d is None else str(d) for i, d in enumerate(shape)) + "]"
