"""`edgekit mcu` for a model with several inputs or outputs: every tensor through TFLM, each output judged.

TFLM's Python interpreter sets an input and reads an output by index (`set_input(x, i)`, `get_output(i)`), in
the flatbuffer's order; LiteRT's signature of the same file names those indices (`features`, `image`), so
the run's named test split is quantized input by input and fed by index. Each output is then compared, in
int8 steps, with LiteRT's built-in kernels (XNNPACK off: the kernels TFLM's are ported from) on the same
int8 inputs, allowed as many steps as LiteRT's own XNNPACK and built-in kernels differ by on that output,
and with Keras by its kind (`toolkit.steps.parity.check_output_row`, as parity judges it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.mcu.tflm import McuError, ModelInfo, TensorInfo, TflmModel
from toolkit.run import layout as A
from toolkit.tolerances import MIN_ROUNDING_STEPS

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.data.named import NamedSplit
    from toolkit.mcu.arena import Arena
    from toolkit.run.documents import ArtifactEntry, McuResult, ParityRow

CLASSIFYING = ("probabilities", "logits", "class_indices")


def io_names(path: Path) -> tuple[list[str], list[str]]:
    """The input and output names in TFLM's index order (the graph's), from the file's signature."""
    from runtimes.tflite_runner import load_interpreter_module

    _, module = load_interpreter_module()
    interp = module.Interpreter(model_path=str(path))
    full = interp._get_full_signature_list() or {}
    if not full:
        raise McuError(
            f"{path.name} has several inputs or outputs but no signature naming them; re-export it with "
            "`edgekit export -p int8`."
        )
    sig = full["serving_default"] if "serving_default" in full else next(iter(full.values()))
    by_index = {int(i): str(n) for n, i in {**sig["inputs"], **sig["outputs"]}.items()}
    ins = [by_index[int(d["index"])] for d in interp.get_input_details()]
    outs = [by_index[int(d["index"])] for d in interp.get_output_details()]
    return ins, outs


def quantize(x: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Float feeds as the int8 input `t` takes them (its scale and zero point), shaped as the input."""
    q = np.clip(np.rint(x / np.float32(t.scale) + t.zero_point), -128, 127).astype(np.int8)
    return q.reshape(len(x), *t.shape[1:])


def litert_run(path: Path, xs: list[np.ndarray], *, xnnpack: bool) -> list[np.ndarray]:
    """LiteRT's raw int8 outputs by index for int8 inputs by index (XNNPACK, or its built-in kernels)."""
    from runtimes.capture import native_output
    from runtimes.tflite_runner import load_interpreter_module

    _, module = load_interpreter_module()
    kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": 1}
    if not xnnpack:
        resolver = getattr(module, "OpResolverType", None) or module.experimental.OpResolverType
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_output():
        interp = module.Interpreter(**kwargs)
        ins, outs = interp.get_input_details(), interp.get_output_details()
        for d, x in zip(ins, xs, strict=True):
            interp.resize_tensor_input(d["index"], list(x.shape), strict=False)
        interp.allocate_tensors()
        for d, x in zip(ins, xs, strict=True):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        return [np.array(interp.get_tensor(d["index"])) for d in outs]


def _steps(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) if a.size else 0


def _dequantized(q: np.ndarray, t: TensorInfo) -> np.ndarray:
    out: np.ndarray = ((q.astype(np.float32) - t.zero_point) * np.float32(t.scale)).reshape(len(q), *t.shape[1:])
    return out


def judge_outputs(
    entry: ArtifactEntry,
    spec: ModelSpec,
    info: ModelInfo,
    names: list[str],
    raw: dict[str, list[np.ndarray]],
    keras: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    seconds: float,
) -> tuple[list[dict[str, Any]], list[ParityRow]]:
    """Each output: TFLM vs LiteRT's built-in kernels in int8 steps (`raw`: tflm, builtin, xnnpack by index)
    and TFLM vs Keras by the output's kind; its mcu.json figures and its parity row."""
    from toolkit.diagnosis.outputs import kind_error
    from toolkit.mcu.step import _tflm_version
    from toolkit.steps.parity import check_output_row, compared, output_score

    figures, rows = [], []
    for i, name in enumerate(names):
        tensor = spec.output_named(name)
        kind = tensor.kind or "probabilities"
        tflm, builtin, xnn = raw["tflm"][i], raw["builtin"][i], raw["xnnpack"][i]
        got, ref = _dequantized(tflm, info.outputs[i]), keras[name]
        if kind == "class_indices":
            got = np.rint(got).astype(np.int64)
        score = output_score(kind, compared(ref, kind), targets[name])[1]
        row = check_output_row(
            entry.model_copy(update={"runtime": "tflm"}),
            tensor,
            compared(got, kind),
            compared(ref, kind),
            targets[name],
            score,
            seconds,
            f"tflite-micro {_tflm_version()} (reference kernels)",
            output_step=info.outputs[i].scale or None,
        )
        steps, rounding = _steps(tflm, builtin), max(MIN_ROUNDING_STEPS, _steps(xnn, builtin))
        if steps > rounding:
            row.failures.append(
                f"output {name}: TFLM differs from LiteRT's built-in kernels by {steps} int8 steps, more than "
                f"LiteRT's own two kernel sets differ on it ({rounding})"
            )
            row.passed = False
        flat = tflm.reshape(len(tflm), -1)
        agree = (
            float((flat.argmax(1) == xnn.reshape(len(xnn), -1).argmax(1)).mean())
            if kind in ("probabilities", "logits") and flat.shape[1] > 1
            else None
        )
        vs_keras = kind_error(kind, ref, got, targets[name] if kind in CLASSIFYING else None)
        figures.append(
            {
                "output": name,
                "kind": kind,
                "max_int8_steps_vs_builtin": steps,
                "litert_rounding_steps": rounding,
                "max_int8_steps_vs_litert": _steps(tflm, xnn),
                "agreement_litert": agree,
                "keras_measure": vs_keras.measure,
                "keras_value": vs_keras.value,
                "accuracy": vs_keras.accuracy,
                "keras_accuracy": vs_keras.reference_accuracy,
                "passed": row.passed,
                "failures": list(row.failures),
            }
        )
        rows.append(row)
    return figures, rows


def check_several(
    run_dir: Path,
    entry: ArtifactEntry,
    ref: tuple[ArtifactEntry, Path],
    spec: ModelSpec,
    split: NamedSplit,
) -> tuple[ModelInfo, Arena, bytes, dict[str, Any], list[ParityRow], list[str]]:
    """Run one int8 artifact of a model with several tensors in TFLM: its info, arena, bytes, parity block,
    parity rows (one per output) and the output names by TFLM index."""
    from toolkit.mcu.arena import measure_arena
    from toolkit.mcu.tflm import read_model, require_int8
    from toolkit.steps.parity import predict_named

    path = A.verified_path(run_dir, entry)
    blob = path.read_bytes()
    info = read_model(blob, path.name)
    require_int8(info, path.name)
    in_names, out_names = io_names(path)
    native = [quantize(split.inputs[name], info.inputs[i]) for i, name in enumerate(in_names)]
    raw = {"builtin": litert_run(path, native, xnnpack=False), "xnnpack": litert_run(path, native, xnnpack=True)}
    arena = measure_arena(blob, path.name, native, len(out_names))
    t0 = time.perf_counter()
    raw["tflm"] = TflmModel(blob, path.name, arena.min_bytes).run_all(native, len(out_names))
    seconds = time.perf_counter() - t0
    keras, _ = predict_named(ref[1], split.inputs, spec=A.entry_spec(ref[0]))
    figures, rows = judge_outputs(entry, spec, info, out_names, raw, keras, split.targets, seconds)
    parity = {
        "images": len(split),
        "accuracy": None,
        "keras_accuracy": None,
        "agreement_litert": None,
        "disagreements_litert": None,
        "agreement_keras": None,
        "disagreements_keras": None,
        "max_int8_steps_vs_builtin": None,  # each output has its own, and its own allowance: see `outputs`
        "litert_rounding_steps": None,
        "max_int8_steps_vs_litert": max(f["max_int8_steps_vs_litert"] for f in figures),
        "litert_backend": None,
        "passed": all(f["passed"] for f in figures),
        "failures": [msg for r in rows for msg in r.failures],
        "outputs": figures,
    }
    return info, arena, blob, parity, rows, out_names


def result_several(
    run_dir: Path,
    entry: ArtifactEntry,
    ref: tuple[ArtifactEntry, Path],
    spec: ModelSpec,
    split: NamedSplit,
) -> McuResult:
    """mcu.json's entry for one artifact of a model with several tensors, with its firmware files."""
    from toolkit.mcu.firmware import write_firmware
    from toolkit.mcu.step import MCU_DIR, _result
    from toolkit.run.documents import McuResult

    info, arena, blob, parity, rows, out_names = check_several(run_dir, entry, ref, spec, split)
    in_names, _ = io_names(A.verified_path(run_dir, entry))
    files = write_firmware(
        run_dir / MCU_DIR / entry.name,
        blob,
        info.ops,
        arena.min_bytes,
        arena.recommended_bytes,
        Path(entry.path).name,
        io=(tuple(in_names), tuple(out_names)),
    )
    result = _result(run_dir, entry, info, arena, blob, parity, rows[0], files)

    def tensor(t: TensorInfo, name: str) -> dict[str, Any]:
        return {"name": name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}

    return McuResult.model_validate(
        {
            **result.model_dump(),
            "parity_rows": [r.model_dump() for r in rows],
            "inputs": [tensor(t, n) for t, n in zip(info.inputs, in_names, strict=True)],
            "outputs": [tensor(t, n) for t, n in zip(info.outputs, out_names, strict=True)],
        }
    )
