"""A TFLite file as the source (`--model model.tflite`): check it, and import it into a run as `model.tflite`.

The reference is the file itself on LiteRT (fp32): no Keras, no training; the file is also the run's
tflite-fp32 artifact. What edgekit takes from a TFLite file (for now): one subgraph with at most one signature,
one float32 input, an image `[N, H, W, C]` or `[N, C, H, W]` (as litert-torch writes a PyTorch module's input;
the layout is read from the shape, then from the data) or a vector `[N, F]`, and one float32 output `[N, K]`.
The batch axis may be dynamic (`shape_signature` -1, as TFLiteConverter writes for Keras) or fixed at 1 (as
litert-torch writes): a fixed-batch file is run one sample at a time (`runtimes.tflite_runner`), because
resizing it breaks on its fixed RESHAPE shapes. Everything else is refused in one line before anything is
written: not a flatbuffer, several subgraphs or signatures, other dtypes (int64 ids, strings), dynamic sizes
other than the batch, and a file that is already quantized (int8/int16/fp16 tensors).
"""

from __future__ import annotations

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

TFLITE_SUFFIXES: Final = (".tflite",)
# Tensor types only a quantized (or fp16) file holds: such a file is an artifact, not a reference to quantize.
QUANTIZED_DTYPES: Final = frozenset({"int8", "uint8", "int16", "float16", "int4"})


class TfliteSourceError(FileSourceError):
    """The TFLite file cannot be taken as a run's source (one line: what and how to fix it)."""


def is_tflite_source(path: Path | str | None) -> bool:
    """True when `--model` names a TFLite file (by suffix: the file is checked later)."""
    return has_suffix(path, TFLITE_SUFFIXES)


@dataclass(frozen=True)
class TfliteSource:
    """A checked TFLite file: its tensors, signature and ops (several inputs and outputs are refused for now)."""

    path: Path
    inputs: tuple[SourceTensor, ...]
    outputs: tuple[SourceTensor, ...]
    signature: str | None  # the one signature key (litert-torch and TFLiteConverter write serving_default)
    signature_input: str | None  # the input's name within that signature (what calibration feeds)
    ops: tuple[tuple[str, str], ...]  # (output tensor name, op name)
    params: int
    softmax_output: bool

    @property
    def fixed_batch(self) -> int | None:
        """The input's fixed batch size (litert-torch writes 1), or None for a dynamic batch axis."""
        return self.inputs[0].shape[0]


def load_tflite_source(path: Path | str) -> TfliteSource:
    """Read and check `path` as a TFLite model edgekit can take as a source (with LiteRT); write nothing.

    Raises:
        TfliteSourceError: a missing file, not a TFLite flatbuffer, several subgraphs or signatures, several
            inputs or outputs, a quantized file, or tensors of a type edgekit cannot feed (one line).
    """
    path = Path(path).expanduser()
    interp = _open(path)
    signatures = interp.get_signature_list()
    inputs, outputs = _check_io(path, interp, signatures)
    _allocate(path, interp)
    quantized = sorted({_dtype(d) for d in interp.get_tensor_details()} & QUANTIZED_DTYPES)
    if quantized:
        raise TfliteSourceError(
            f"{path} is already quantized ({', '.join(quantized)} tensors); give the fp32 .tflite it was made from: "
            "edgekit makes the quantized artifacts and compares them with the fp32 reference."
        )
    key = next(iter(signatures), None)
    names = list(signatures[key]["inputs"]) if key is not None else []
    details = interp._get_ops_details()
    ops = tuple((f"{str(op['op_name']).lower()}_{op['index']}", str(op["op_name"])) for op in details)
    out_index = int(interp.get_output_details()[0]["index"])
    last = [op["op_name"] for op in details if out_index in [int(i) for i in op["outputs"]]]
    return TfliteSource(
        path=path,
        inputs=inputs,
        outputs=outputs,
        signature=key,
        signature_input=names[0] if len(names) == 1 else None,
        ops=ops,
        params=_params(interp),
        softmax_output=last == ["SOFTMAX"],
    )


def check_tflite_source(
    source: TfliteSource, sample_shape: tuple[int, ...] | None, *, output_kind: str | None
) -> ModelSpec:
    """The ModelSpec of the checked file's input and output (batch axis dynamic: edgekit feeds any batch);
    `sample_shape` (one data row's shape) decides an image layout the input shape leaves open."""
    from runtimes.spec import SpecError, TensorSpec, spec_from_tensors

    inp, out = source.inputs[0], source.outputs[0]
    path = source.path
    if len(inp.shape) not in (2, 4):
        raise TfliteSourceError(
            f"{path}: input {inp.name!r} has shape {_text(inp.shape)}; edgekit takes an image [N, H, W, C] or "
            "[N, C, H, W] or a vector [N, F]."
        )
    if inp.shape[0] not in (None, 1):
        raise TfliteSourceError(
            f"{path}: input {inp.name!r} has a fixed batch of {inp.shape[0]} {_text(inp.shape)}; convert it with "
            "batch 1 or a dynamic batch axis."
        )
    if any(d is None for d in inp.shape[1:]):
        raise TfliteSourceError(
            f"{path}: input {inp.name!r} has dynamic sizes {_text(inp.shape)}; exports and benchmarks need fixed "
            "sizes: convert it with a fixed height, width and channel count (only the batch axis dynamic)."
        )
    if len(out.shape) != 2:
        raise TfliteSourceError(
            f"{path}: output {out.name!r} has shape {_text(out.shape)}; edgekit takes [N, K] outputs."
        )
    layout = "NC" if len(inp.shape) == 2 else layout_from_shapes(inp.shape, sample_shape, default="NHWC")
    output_kind = single_output_kind(output_kind, source.softmax_output, out.shape[1], TfliteSourceError)
    try:
        return spec_from_tensors(
            TensorSpec(inp.name, (None, *inp.shape[1:]), "float32"),
            TensorSpec(out.name, (None, out.shape[1]), "float32"),
            output_kind=output_kind,
            layout=layout,
        )
    except SpecError as exc:
        raise TfliteSourceError(f"{path}: {exc}") from None


def output_width(path: Path, rows: np.ndarray) -> int:
    """Run the file on a few data rows with LiteRT: the output width, after checking the outputs are finite and
    one row per input row (the file loads and runs before anything is written)."""
    import numpy as np

    from runtimes.errors import EdgekitError
    from runtimes.tflite_runner import TFLiteRunner

    try:
        with TFLiteRunner(path) as runner:
            out = runner.infer(np.ascontiguousarray(rows, dtype=np.float32))
    except EdgekitError as exc:
        raise TfliteSourceError(str(exc)) from None
    return checked_output_width(path, out, len(rows), TfliteSourceError)


def prepare_tflite(path: Path, dataset_for: Any, *, output_kind: str | None) -> tuple[TfliteSource, ModelSpec, Dataset]:
    """Check the TFLite file with its data: (the source, its spec, the dataset); `dataset_for(spec)` loads the
    data once the input is known."""
    import numpy as np

    source = load_tflite_source(path)
    provisional = check_tflite_source(source, None, output_kind=output_kind)
    dataset = dataset_for(provisional)
    spec = check_tflite_source(source, tuple(np.asarray(dataset.x_test).shape[1:]), output_kind=output_kind)
    width = output_width(source.path, dataset.inputs(dataset.x_test[:2], spec))
    if width != spec.output.shape[1]:
        raise TfliteSourceError(f"{path} declares {spec.output.shape[1]} outputs but gives {width}.")
    return source, spec, dataset


def layout_reason(source: TfliteSource, sample_shape: tuple[int, ...]) -> str:
    """How the run's image layout was decided, for model.json: `input shape`, `data` or `assumed`."""
    return layout_reason_for(source.inputs[0].shape, sample_shape)


def save_tflite_into_run(source: TfliteSource, run_dir: Path, spec: ModelSpec, layout_from: str) -> ModelDocument:
    """Copy the checked file into `run_dir` as model.tflite (byte for byte); return what model.json records (not
    written here)."""
    from runtimes.files import atomic_path
    from toolkit.run import layout as A

    run_dir.mkdir(parents=True, exist_ok=True)
    dest = run_dir / A.TFLITE_MODEL_FILE
    with atomic_path(dest) as tmp:
        shutil.copyfile(source.path, tmp)
    return source_document(
        source.path,
        dest,
        "tflite",
        params=source.params,
        layers=source.ops,
        spec=spec,
        layout_from=layout_from,
        fixed_batch=source.fixed_batch,
    )


def _open(path: Path) -> Any:
    """LiteRT's interpreter over `path`, not yet allocated (a dynamic height would fail there)."""
    from runtimes.tflite_runner import looks_like_tflite

    if not path.is_file():
        raise TfliteSourceError(f"model {path} not found; give a .tflite file.")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not looks_like_tflite(head):
        raise TfliteSourceError(
            f"{path} is not a TFLite flatbuffer (no TFL3 identifier); give a .tflite file written by TFLiteConverter "
            "or litert-torch."
        )
    return _interpreter(path)


def _check_io(
    path: Path, interp: Any, signatures: dict[str, Any]
) -> tuple[tuple[SourceTensor, ...], tuple[SourceTensor, ...]]:
    """The file's inputs and outputs, after refusing several graphs, several tensors, dtypes and dynamic sizes."""
    subgraphs = _subgraphs(interp)
    if subgraphs > 1 or len(signatures) > 1:
        keys = ", ".join(sorted(signatures)) or "none"
        raise TfliteSourceError(
            f"{path} has {subgraphs} subgraphs and {len(signatures)} signatures ({keys}); edgekit takes one graph "
            "with one signature: convert the one function you deploy on its own."
        )
    inputs = tuple(_tensor(d) for d in interp.get_input_details())
    outputs = tuple(_tensor(d) for d in interp.get_output_details())
    if len(inputs) != 1 or len(outputs) != 1:
        what = "inputs" if len(inputs) != 1 else "outputs"
        tensors = inputs if what == "inputs" else outputs
        raise TfliteSourceError(
            f"{path} has {len(tensors)} {what} ({', '.join(t.name for t in tensors) or 'none'}); several "
            "inputs/outputs are not supported yet: edgekit takes one input and one output."
        )
    for what, tensor in (("input", inputs[0]), ("output", outputs[0])):
        _check_dtype(path, what, tensor)
    if any(d is None for d in inputs[0].shape[1:]):
        raise TfliteSourceError(
            f"{path}: input {inputs[0].name!r} has dynamic sizes {_text(inputs[0].shape)}; exports and benchmarks "
            "need fixed sizes: convert it with a fixed height, width and channel count (only the batch axis dynamic)."
        )
    return inputs, outputs


def _interpreter(path: Path) -> Any:
    from runtimes.capture import native_output
    from runtimes.tflite_runner import load_interpreter_module

    _, module = load_interpreter_module()
    # Without XNNPACK: the delegate would replace the ops this check reads (the last op, the op list) by one node.
    resolver = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
    try:
        with native_output():
            interp = module.Interpreter(
                model_path=str(path), experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TfliteSourceError(f"{path} could not be loaded by LiteRT: {first[:200]}") from None
    return interp


def _allocate(path: Path, interp: Any) -> None:
    from runtimes.capture import native_output

    try:
        with native_output():
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TfliteSourceError(f"{path} could not be prepared by LiteRT: {first[:200]}") from None


def _subgraphs(interp: Any) -> int:
    count = getattr(getattr(interp, "_interpreter", None), "NumSubgraphs", None)
    return int(count()) if callable(count) else 1


def _dtype(detail: dict[str, Any]) -> str:
    import numpy as np

    return str(np.dtype(detail["dtype"]).name)


def _tensor(detail: dict[str, Any]) -> SourceTensor:
    sig = detail.get("shape_signature")
    dims = list(sig) if sig is not None and len(sig) else list(detail["shape"])
    return SourceTensor(str(detail["name"]), tuple(None if int(d) < 0 else int(d) for d in dims), _dtype(detail))


def _check_dtype(path: Path, what: str, tensor: SourceTensor) -> None:
    if tensor.dtype == "float32":
        return
    if tensor.dtype in QUANTIZED_DTYPES:
        raise TfliteSourceError(
            f"{path} is already quantized ({what} {tensor.name!r} is {tensor.dtype}); give the fp32 .tflite it was "
            "made from: edgekit makes the quantized artifacts and compares them with the fp32 reference."
        )
    raise TfliteSourceError(
        f"{path}: {what} {tensor.name!r} has dtype {tensor.dtype}; edgekit takes float32 {what}s for now."
    )


def _params(interp: Any) -> int:
    """The element count of the float constants (weights): op inputs that no op makes and the model is not fed."""
    import numpy as np

    ops = interp._get_ops_details()
    used = {int(i) for op in ops for i in op["inputs"] if int(i) >= 0}
    made = {int(i) for op in ops for i in op["outputs"]} | {int(d["index"]) for d in interp.get_input_details()}
    details = {int(d["index"]): d for d in interp.get_tensor_details()}
    weights = [details[i] for i in used - made if i in details and _dtype(details[i]) == "float32"]
    return sum(int(np.prod(d["shape"])) for d in weights)


def _text(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"
