"""What a model file taken as the source (`--model model.tflite` or `model.onnx`) shares across formats.

Each format's own checks (flatbuffer or protobuf, its dtypes, its quantized ops) stay in its module
(`toolkit.model.tflite_source`, `toolkit.model.onnx_source`); here are the parts whose logic is the same: the
tensor as the file declares it, the error both refusals derive from, the single output's kind, the check of
the outputs the file gives on a few data rows, and how an image input's layout is read from its shape and data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    import numpy as np

    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ModelDocument

# Channel counts an image axis is taken for (grey or RGB): the axis holding one of them is the channel axis.
_CHANNELS: Final = (1, 3)


class FileSourceError(ToolkitError):
    """A model file cannot be taken as a run's source (one line: what and how to fix it)."""


@dataclass(frozen=True)
class SourceTensor:
    """One model input or output as the file declares it (None for a dynamic or symbolic dimension)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


def has_suffix(path: Path | str | None, suffixes: tuple[str, ...]) -> bool:
    """True when `--model` names a file with one of `suffixes` (by suffix only: the file is checked later)."""
    return path is not None and Path(str(path)).suffix.lower() in suffixes


def single_output_kind(
    output_kind: str | None, softmax_output: bool, width: int | None, error: type[FileSourceError]
) -> str:
    """The kind of a file's one [N, K] output: `output_kind` when given (refused with `error` if unknown), else
    probabilities after a Softmax, values for one column, logits otherwise."""
    from runtimes.spec import OUTPUT_KINDS

    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise error(f"--output-kind {output_kind!r} is unknown; choose one of {', '.join(OUTPUT_KINDS)}.")
    if output_kind is not None:
        return output_kind
    return "probabilities" if softmax_output else ("values" if width == 1 else "logits")


def checked_output_width(path: Path, out: np.ndarray, rows: int, error: type[FileSourceError]) -> int:
    """The width of the outputs the file gave for `rows` data rows, after refusing (with `error`) outputs that are
    not finite [N, K] with one row per input row."""
    import numpy as np

    if out.ndim != 2 or out.shape[0] != rows or not np.all(np.isfinite(out)):
        raise error(
            f"{path} gives outputs of shape {tuple(out.shape)} (finite: {bool(np.all(np.isfinite(out)))}) for "
            f"{rows} rows of its data; expected finite [N, K] outputs."
        )
    return int(out.shape[1])


def source_document(
    path: Path,
    dest: Path,
    file_format: Literal["tflite", "onnx"],
    *,
    params: int,
    layers: tuple[tuple[str, str], ...],
    spec: ModelSpec,
    layout_from: str,
    **format_fields: int | str | None,
) -> ModelDocument:
    """What model.json records for the source file `path` once copied into the run as `dest` (not written
    here); `format_fields` are the format's own fields (left unset otherwise, so model.json leaves them out)."""
    from runtimes.files import sha256_file
    from toolkit.run import layout as A
    from toolkit.run.documents import ModelDocument

    # The common fields and the format's own, built as one set so only those given count as set.
    fields: dict[str, Any] = {
        "schema_version": A.SCHEMA_VERSION,
        "name": path.name,
        "source": str(path.resolve()),
        "format": file_format,
        "model_sha256": sha256_file(dest),
        "params": params,
        "layers": [{"name": name, "class": op} for name, op in layers],
        "unknown_layers": [],
        "output_kind": spec.output_kind,
        "model_spec": spec,
        "created_utc": A.utc_now(),
        "source_sha256": sha256_file(path),
        "layout": spec.layout,
        "layout_from": layout_from,
        **format_fields,
    }
    return ModelDocument(**fields)


def layout_from_shapes(shape: tuple[int | None, ...], sample: tuple[int, ...] | None, default: str) -> str:
    """An image input's layout (NCHW or NHWC) from its shape, then from one data row's shape, else `default`
    (NCHW for ONNX, NHWC for TFLite)."""
    return _from_shape(shape) or (None if sample is None else _from_data(shape, sample)) or default


def layout_reason_for(shape: tuple[int | None, ...], sample_shape: tuple[int, ...]) -> str:
    """How an input's layout was decided, for model.json: `input shape`, `data` or `assumed`."""
    if len(shape) != 4:
        return "input shape"
    if _from_shape(shape) is not None:
        return "input shape"
    return "data" if _from_data(shape, sample_shape) is not None else "assumed"


def _from_shape(shape: tuple[int | None, ...]) -> str | None:
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    return None


def _from_data(shape: tuple[int | None, ...], sample: tuple[int, ...]) -> str | None:
    """The layout the data rows say (channels-last rows for a channels-first file, or the other way round)."""
    tail = tuple(shape[1:])
    if len(sample) != 3 or tuple(sample) == tail:
        return None
    if tuple(sample) == (tail[1], tail[2], tail[0]):
        return "NCHW"  # channels-last data, channels-first model
    return None
