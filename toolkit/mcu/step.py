"""The `mcu` step over a run directory: each full-int8 TFLite artifact in TFLM, sized for boards.

For each artifact: op check, measured arena, flash (model bytes; TFLM's own code is not measured), parity
over the test split (TFLM against LiteRT's int8 run of the same file and against Keras), the fits-on table,
and the firmware files. Writes `mcu/<artifact>/` and `mcu.json`, and a `runtime: tflm` row in parity.json
when that file measured the same images. The test split is the run's own data (`run_source.run_dataset`:
the user's dataset.json, or shipped MNIST for a reference run); logits are compared as their softmax,
as parity does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtimes.registry import make_runner
from toolkit.errors import ToolkitError
from toolkit.mcu.arena import Arena, measure_arena
from toolkit.mcu.boards import BOARDS, McuBoard, emulated_boards, fits
from toolkit.mcu.build import TFLM_COMMIT
from toolkit.mcu.firmware import write_firmware
from toolkit.mcu.tflm import INT8_FIX, McuError, ModelInfo, TflmModel, load_tflm, read_model, require_int8
from toolkit.model.run_source import data_summary, run_dataset, run_spec
from toolkit.progress import Progress, ProgressCallback, as_progress
from toolkit.run import layout as A
from toolkit.steps.parity import check_row, compared, predict_all
from toolkit.tolerances import MIN_ROUNDING_STEPS

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtimes.spec import ModelSpec
    from toolkit.run.documents import (
        ArtifactEntry,
        ManifestDocument,
        McuBoardFit,
        McuDocument,
        McuEmulated,
        McuResult,
        ParityRow,
    )

MCU_DIR = "mcu"
MCU_JSON = "mcu.json"
# TFLM's own code is not measured here (no ARM toolchain or TFLM build on the host). The figure below is cited,
# not measured: TensorFlow's TFLM overview (tensorflow.org/lite/microcontrollers) says "the core runtime just
# fits in 16 KB on an Arm Cortex M3", and its older overview gives 22 KB with the ops of a speech keyword
# model. It is a lower bound: the kernels of this model's ops come on top (a full libtensorflow-microlite.a
# for Cortex-M is ~1.1 MB before the linker drops what is unused; tflite-micro issue #3069).
RUNTIME_CODE_MIN_BYTES = 16 * 1024
# `--board`: how many test rows the emulated firmware runs (QEMU runs the reference kernels at ~20 images/s).
EMULATED_IMAGES = 500
CODE_NOT_MEASURED = (
    "TFLM's own code is not measured here; at least 16 KiB for the core runtime on a Cortex-M3 (TFLM "
    "documentation), more with the kernels of the ops used: measure it with `arm-none-eabi-size` on the firmware"
)


def select(manifest: ManifestDocument, names: list[str] | None) -> list[ArtifactEntry]:
    """The artifacts to check: those named, or every TFLite int8 artifact (full-integer I/O)."""
    if names:
        chosen = A.select_artifacts(manifest, names)
        other = next((e for e in chosen if e.format != "tflite"), None)
        if other is not None:
            raise McuError(f"{other.name} is not a TFLite model ({other.format}); TFLM runs .tflite files: {INT8_FIX}.")
        return chosen
    chosen = [e for e in manifest.artifacts if e.format == "tflite" and e.precision == "int8"]
    if not chosen:
        raise McuError(f"this run has no full-int8 TFLite artifact; {INT8_FIX}.")
    return chosen


def check_artifact(
    run_dir: Path,
    entry: ArtifactEntry,
    ref: tuple[ArtifactEntry, Path],
    images: np.ndarray,
    labels: np.ndarray,
    output_kind: str = "probabilities",
    boards: list[McuBoard] | None = None,
    emulated_images: int = EMULATED_IMAGES,
    progress: Progress | None = None,
) -> McuResult:
    """Everything `edgekit mcu` reports for one artifact on the test rows `images`; writes its firmware files.

    `boards`: build the firmware for each one's core (CMSIS-NN and reference kernels), run it on QEMU over the
    first `emulated_images` rows, and size those boards with what it measured."""
    path = A.verified_path(run_dir, entry)
    blob = path.read_bytes()
    info = read_model(blob, path.name)
    require_int8(info, path.name)
    spec = A.entry_spec(entry) or A.entry_spec(ref[0])
    native, litert_out, builtin_out, litert_backend = _litert_outputs(path, spec, images)
    arena = measure_arena(blob, path.name, native)
    t0 = time.perf_counter()
    tflm = TflmModel(blob, path.name, arena.min_bytes)  # the measured arena runs the whole test split
    tflm_out = tflm.run(native)
    seconds = time.perf_counter() - t0
    keras_out, _ = predict_all(ref[1], images, spec=A.entry_spec(ref[0]))
    keras_probs = compared(keras_out, output_kind)
    keras_acc = float((keras_probs.argmax(1) == labels).mean())
    dequantized = (tflm_out.astype(np.float32) - info.output.zero_point) * np.float32(info.output.scale)
    row = check_row(
        entry.model_copy(update={"runtime": "tflm"}),
        compared(dequantized, output_kind),
        keras_probs,
        labels,
        keras_acc,
        seconds,
        f"tflite-micro {_tflm_version()} (reference kernels)",
        output_kind=output_kind,
    )
    vs_litert = _against_litert(row, tflm_out, litert_out, builtin_out)
    sample = (native[0], int(litert_out[0].argmax()))
    fw_dir = run_dir / MCU_DIR / entry.name
    files = write_firmware(fw_dir, blob, info.ops, arena.min_bytes, arena.recommended_bytes, path.name, sample=sample)
    emulated = None
    if boards:
        m = min(len(images), emulated_images)
        seen = _Seen(native[:m], tflm_out[:m], litert_out[:m], builtin_out[:m], keras_probs[:m], labels[:m])
        emulated = emulate_artifact(run_dir, entry, info, arena, fw_dir, seen, boards, output_kind, progress)
        arena_measured = max(e.min_arena_bytes for e in emulated)
        on = ", ".join(sorted({f"{e.core} ({e.machine})" for e in emulated}))
        files = write_firmware(
            fw_dir, blob, info.ops, arena_measured, arena_measured, path.name, sample=sample, measured_on=on
        )
    parity = {
        "images": len(images),
        "accuracy": row.accuracy,
        "keras_accuracy": keras_acc,
        **vs_litert,
        "litert_backend": litert_backend,
        "agreement_keras": row.top1_agreement,
        "disagreements_keras": row.disagreements,
        "max_int8_steps_vs_litert": _max_steps(tflm_out, litert_out),
        "passed": row.passed,
        "failures": row.failures,
    }
    return _result(run_dir, entry, info, arena, blob, parity, row, files, emulated)


@dataclass(frozen=True)
class _Seen:
    """The first rows of the test split and what the host saw on them (int8 and Keras probabilities)."""

    native: np.ndarray
    host_tflm: np.ndarray
    litert: np.ndarray
    builtin: np.ndarray
    keras_probs: np.ndarray
    labels: np.ndarray


def emulate_artifact(
    run_dir: Path,
    entry: ArtifactEntry,
    info: ModelInfo,
    arena: Arena,
    fw_dir: Path,
    seen: _Seen,
    boards: list[McuBoard],
    output_kind: str,
    progress: Progress | None,
) -> list[McuEmulated]:
    """The firmware for each board's core with each kernel set, run on QEMU and judged as the host run is."""
    from toolkit.mcu.build import CORES, KERNEL_SETS, check_tools
    from toolkit.mcu.emulated import INSTRUCTIONS_NOTE, run_emulated
    from toolkit.run.documents import McuEmulated

    check_tools()
    p = as_progress(progress)
    task = p.add_task(f"mcu: {entry.name} on QEMU", total=None)

    def say(what: str, done: int, total: int) -> None:
        p.update(task, description=f"mcu: compiling {what} (first build; cached after)", completed=done, total=total)

    keras_acc = float((seen.keras_probs.argmax(1) == seen.labels).mean())
    results = []
    for core_name in dict.fromkeys(b.emulated_core for b in boards if b.emulated_core):
        core = CORES[core_name]
        limit = core.ram_length - 256 * 1024  # newlib's heap (stdio buffers) and the stack need the rest
        arena_max = min(max(4 * arena.min_bytes, 64 * 1024), limit) // 16 * 16
        if arena.min_bytes > limit:
            raise McuError(
                f"{entry.name} needs a {arena.min_bytes:,}-byte arena; QEMU's {core.machine} has "
                f"{core.ram_length:,} bytes of data memory."
            )
        for kernels in KERNEL_SETS:
            p.update(task, description=f"mcu: {entry.name} on QEMU {core.machine} ({kernels} kernels)")
            e = run_emulated(core_name, kernels, fw_dir, info.ops, seen.native, arena_max, fw_dir / "emulated", say)
            deq = (e.outputs.astype(np.float32) - info.output.zero_point) * np.float32(info.output.scale)
            row = check_row(
                entry.model_copy(update={"runtime": f"tflm-{core_name}-{kernels}"}),
                compared(deq, output_kind),
                seen.keras_probs,
                seen.labels,
                keras_acc,
                e.seconds,
                f"tflite-micro {TFLM_COMMIT[:7]} on QEMU {core.machine} ({kernels} kernels)",
                output_kind=output_kind,
            )
            vs = _against_litert(row, e.outputs, seen.litert, seen.builtin)
            s = e.sizes
            size = {
                "text": s.text,
                "data": s.data,
                "bss": s.bss,
                "flash_bytes": s.flash,
                "flash_model": s.flash_model,
                "flash_tflm": s.flash_tflm,
                "flash_rest": s.flash_rest,
                "ram_tflm": s.ram_tflm,
                "ram_rest": s.ram_rest,
            }
            results.append(
                McuEmulated.model_validate(
                    {
                        "core": core_name,
                        "kernels": kernels,
                        "machine": f"{core.machine} / {core.cpu}",
                        "qemu": e.qemu,
                        "arena_used_bytes": e.arena_used_bytes,
                        "min_arena_bytes": e.min_arena_bytes,
                        "size": size,
                        "stack_bytes": e.stack_bytes,
                        "ram_needed_bytes": e.min_arena_bytes + s.ram_without_arena + e.stack_bytes,
                        "images": len(seen.native),
                        "accuracy": row.accuracy,
                        "keras_accuracy": keras_acc,
                        "agreement_litert": vs["agreement_litert"],
                        "disagreements_litert": vs["disagreements_litert"],
                        "agreement_keras": row.top1_agreement,
                        "disagreements_keras": row.disagreements,
                        "max_int8_steps_vs_litert": _max_steps(e.outputs, seen.litert),
                        "max_int8_steps_vs_builtin": vs["max_int8_steps_vs_builtin"],
                        "litert_rounding_steps": vs["litert_rounding_steps"],
                        "max_int8_steps_vs_host_tflm": _max_steps(e.outputs, seen.host_tflm),
                        "passed": row.passed,
                        "failures": row.failures,
                        "instructions_per_inference": e.instructions_per_inference,
                        "instructions_note": INSTRUCTIONS_NOTE,
                        "wall_seconds": e.seconds,
                        "library_compiled_files": e.library.compiled,
                        "library_seconds": e.library.seconds,
                        "elf": str((fw_dir / "emulated" / f"{core_name}-{kernels}.elf").relative_to(run_dir)),
                    }
                )
            )
    p.remove_task(task)
    return results


def board_fits(arena: Arena, model_bytes: int, emulated: list[McuEmulated] | None) -> list[McuBoardFit]:
    """Each board sized with the firmware measured on its core (CMSIS-NN kernels) when that core was emulated,
    else with the host estimate; each fit says which."""
    measured = {e.core: e for e in emulated or [] if e.kernels == "cmsis_nn"}
    fits_list = []
    for b in BOARDS:
        e = measured.get(b.emulated_core or "")
        if e is not None:
            how = (
                f"measured on QEMU {e.machine} with CMSIS-NN kernels: RAM = smallest arena + TFLM's and the "
                "firmware's data and bss + the deepest stack; flash = the image's text + data"
            )
            fits_list.append(fits(e.ram_needed_bytes, e.size.flash_bytes, b, how))
        else:
            why = b.not_emulated or "its core was not emulated in this run (edgekit mcu --board all)"
            how = f"host estimate (recommended arena; model + 16 KiB cited TFLM core): not emulated, {why}"
            fits_list.append(fits(arena.recommended_bytes, model_bytes + RUNTIME_CODE_MIN_BYTES, b, how))
    return fits_list


def _litert_outputs(
    path: Path, spec: ModelSpec | None, images: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The int8 inputs, and LiteRT's int8 outputs with XNNPACK (its default) and with its built-in kernels."""
    n = len(images)
    with make_runner(path, spec=spec) as litert:
        native = litert.to_native(images)
        litert_out = np.concatenate([litert.run_native(native[i : i + 1000]) for i in range(0, n, 1000)])
        litert_backend = litert.backend()
    with make_runner(path, spec=spec, use_xnnpack=False) as builtin:
        builtin_out = np.concatenate([builtin.run_native(native[i : i + 1000]) for i in range(0, n, 1000)])
    return native, litert_out, builtin_out, litert_backend


def _against_litert(
    row: ParityRow, tflm_out: np.ndarray, litert_out: np.ndarray, builtin_out: np.ndarray
) -> dict[str, Any]:
    """TFLM judged against LiteRT on the same file: `row` fails when TFLM is further from LiteRT's built-in
    kernels than LiteRT's own two kernel sets are from each other. The agreement figures of mcu.json."""
    differ = tflm_out.argmax(1) != litert_out.argmax(1)
    steps_builtin = _max_steps(tflm_out, builtin_out)
    rounding = max(MIN_ROUNDING_STEPS, _max_steps(litert_out, builtin_out))
    # A top-1 swap needs LiteRT's two best outputs within twice the per-output rounding difference.
    best_two = np.sort(litert_out.astype(np.int32), axis=1)[:, -2:]
    ties = differ & (best_two[:, 1] - best_two[:, 0] <= 2 * rounding)
    if steps_builtin > rounding:
        row.failures.append(
            f"TFLM differs from LiteRT's built-in kernels by {steps_builtin} int8 steps, more than LiteRT's own two "
            f"kernel sets differ on this model ({rounding})"
        )
        row.passed = False
    row.tolerance += (
        ", max |TFLM - LiteRT built-in kernels| ≤ the steps LiteRT's XNNPACK and built-in kernels differ by here "
        f"({rounding})"
    )
    return {
        "agreement_litert": float(1 - differ.mean()),
        "disagreements_litert": int(differ.sum()),
        "near_tie_disagreements_litert": int(ties.sum()),
        "max_int8_steps_vs_builtin": steps_builtin,
        "litert_rounding_steps": rounding,
    }


def _result(
    run_dir: Path,
    entry: ArtifactEntry,
    info: ModelInfo,
    arena: Arena,
    blob: bytes,
    parity: dict[str, Any],
    row: ParityRow,
    files: list[Path],
    emulated: list[McuEmulated] | None = None,
) -> McuResult:
    """One artifact's entry in mcu.json: the model's ops and I/O, arena, flash, parity and the boards it fits."""
    from toolkit.run.documents import McuResult

    result = {
        "artifact": entry.name,
        "path": entry.path,
        "sha256": entry.sha256,
        "ops": list(info.ops),
        "op_count": info.op_count,
        "input": {
            "shape": list(info.input.shape),
            "dtype": info.input.dtype,
            "scale": info.input.scale,
            "zero_point": info.input.zero_point,
        },
        "output": {
            "shape": list(info.output.shape),
            "dtype": info.output.dtype,
            "scale": info.output.scale,
            "zero_point": info.output.zero_point,
        },
        "arena": arena.to_dict(),
        "flash": _flash(len(blob), emulated),
        "parity": parity,
        "parity_row": row,
        "emulated": emulated,
        "boards": board_fits(arena, len(blob), emulated),
        "boards_sized_with": "boards whose core ran on QEMU: the firmware measured there (CMSIS-NN kernels); the "
        "others: recommended arena (host + CMSIS-NN margin) as RAM, model bytes + 16 KiB (the TFLM core runtime, "
        "cited) as flash"
        if emulated
        else "recommended arena (measured + CMSIS-NN margin) as RAM; model bytes + 16 KiB (the TFLM core runtime, "
        "cited) as flash",
        "files": [str(p.relative_to(run_dir)) for p in files],
        "latency": "not measured: QEMU counts instructions, it does not time a microcontroller"
        if emulated
        else "not measured: no microcontroller was run; TFLM ran on the host",
    }
    return McuResult.model_validate(result)


def _flash(model_bytes: int, emulated: list[McuEmulated] | None) -> dict[str, Any]:
    """The flash block: TFLM's code measured in the first CMSIS-NN firmware when one ran, else cited."""
    first = next((e for e in emulated or [] if e.kernels == "cmsis_nn"), None)
    if first is None:
        return {
            "model_bytes": model_bytes,
            "runtime_code_bytes": None,
            "runtime_code_min_bytes": RUNTIME_CODE_MIN_BYTES,
            "note": CODE_NOT_MEASURED,
        }
    return {
        "model_bytes": model_bytes,
        "runtime_code_bytes": first.size.flash_tflm,
        "runtime_code_min_bytes": None,
        "note": f"TFLM's runtime and this model's kernels measured in the firmware for {first.core} with CMSIS-NN "
        "(arm-none-eabi-size and the linker's map, --gc-sections); every core and kernel set under `emulated`",
    }


def _max_steps(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int32) - b.astype(np.int32)).max()) if a.size else 0


def _tflm_version() -> str:
    try:
        from tflite_micro import __version__
    except ImportError:
        return "?"
    return str(__version__)


def mcu_step(
    run_dir: Path,
    *,
    artifact_names: list[str] | None = None,
    limit: int | None = None,
    data: Any = None,
    progress: ProgressCallback | None = None,
    boards: list[str] | None = None,
    emulated_images: int = EMULATED_IMAGES,
) -> McuDocument:
    """Check every full-int8 TFLite artifact for microcontrollers; write mcu/ and mcu.json; return mcu.json.

    `boards`: board keys (`toolkit.mcu.boards`, or "all"): build the firmware for their cores and run it on
    QEMU over the first `emulated_images` test rows (`emulate_artifact`).

    `data`: the run's own (dataset.json, or shipped MNIST) when None; else an .npz, folder, MNIST source,
    `Mnist` or `Dataset`. Regression models ("values") are refused: TFLM parity here is top-1 agreement. A model
    with several inputs or outputs runs with every tensor on the run's named data, each output judged by its
    kind (`toolkit.mcu.several`).
    """
    load_tflm()  # the missing extra is the first thing a user hears about
    if limit is not None and limit < 1:
        raise ToolkitError(f"--limit must be 1 or more, got {limit}.")
    if emulated_images < 1:
        raise ToolkitError(f"--emulated-images must be 1 or more, got {emulated_images}.")
    chosen = emulated_boards(boards) if boards else None
    if chosen:
        from toolkit.mcu.build import check_tools

        check_tools()  # before any other work: the toolchain and QEMU, or the packages to install
    from toolkit.model.run_source import refuse_onnx_source

    refuse_onnx_source(
        run_dir, "mcu", "builds TFLite Micro firmware from a tflite-int8 artifact, and TFLite from ONNX needs onnx2tf"
    )
    manifest = A.load_manifest(run_dir)
    entries = select(manifest, artifact_names)
    ref_entry = A.listed_reference(run_dir, manifest)
    ref = (ref_entry, A.verified_path(run_dir, ref_entry))
    spec = A.entry_spec(ref_entry) or run_spec(run_dir)
    if not spec.is_single:
        if chosen:
            raise McuError(
                "--board runs models with one input and one output; this one has several: drop --board (the host "
                "check still runs every tensor)."
            )
        return _mcu_several(run_dir, entries, ref, spec, run_dataset(run_dir, data, spec=spec), limit, progress)
    if spec.output_kind == "values":
        raise McuError(
            "edgekit mcu checks classification models (top-1 agreement with LiteRT and Keras); this model outputs "
            "regression values: check its int8 artifact with `edgekit parity` instead."
        )
    dataset = run_dataset(run_dir, data, spec=spec)
    images, labels = dataset.test_split(spec, limit)
    n = len(images)
    p = as_progress(progress)
    doc = _checked_document(
        entries,
        lambda e: check_artifact(run_dir, e, ref, images, labels, spec.output_kind, chosen, emulated_images, p),
        dataset,
        n,
        p,
    )
    results = doc.results
    doc.parity_json = _add_parity_rows(run_dir, [r.parity_row for r in results], [r.sha256 for r in results], n)
    return A.Run(run_dir).save(doc)


def _checked_document(
    entries: list[ArtifactEntry],
    check: Callable[[ArtifactEntry], McuResult],
    dataset: Any,
    n: int,
    progress: Progress | ProgressCallback | None,
) -> McuDocument:
    """Each artifact checked in TFLM by `check` (one progress step each), and mcu.json's document over them on
    `n` samples of `dataset` (its parity.json line is the caller's)."""
    from toolkit.run.documents import McuDocument

    p = as_progress(progress)
    task = p.add_task("mcu", total=len(entries))
    results = []
    for entry in entries:
        p.update(task, description=f"mcu: {entry.name} in TFLM")
        results.append(check(entry))
        p.advance(task)
    return McuDocument(
        schema_version=A.SCHEMA_VERSION,
        created_utc=A.utc_now(),
        cpu=A.this_cpu(),
        tflite_micro=_tflm_version(),
        data=data_summary(dataset, n),
        results=results,
        passed=all(r.parity.passed and all(e.passed for e in r.emulated or []) for r in results),
    )


def _add_parity_rows(run_dir: Path, rows: list[ParityRow], shas: list[str], n: int) -> str:
    """Put the `runtime: tflm` rows into parity.json if it measured the same images; say what was done."""
    from toolkit.run.documents import ParityDocument

    run = A.Run(run_dir)
    report = run.find(ParityDocument)
    if report is None:
        return "not updated: no parity.json yet (run `edgekit parity`, then `edgekit mcu`)"
    if report.data.images != n:
        return f"not updated: parity.json measured {report.data.images} images, mcu {n}"
    keys = {(r.artifact, r.runtime) for r in rows}  # an artifact's tflm rows (one per output) are replaced together
    report.results = [r for r in report.results if (r.artifact, r.runtime) not in keys] + rows
    for r, sha in zip(rows, shas, strict=True):
        report.artifacts[r.artifact] = sha
    report.passed = all(r.passed for r in report.results)
    run.save(report)
    return f"updated: {len(rows)} row(s) with runtime tflm"


def _mcu_several(
    run_dir: Path,
    entries: list[ArtifactEntry],
    ref: tuple[ArtifactEntry, Path],
    spec: ModelSpec,
    dataset: Any,
    limit: int | None,
    progress: ProgressCallback | None,
) -> McuDocument:
    """mcu_step for a model with several inputs or outputs (`toolkit.mcu.several`): the named test split."""
    from toolkit.data.named import NamedDataset, names_text
    from toolkit.errors import DataError
    from toolkit.mcu.several import result_several

    if not isinstance(dataset, NamedDataset):
        raise DataError(
            f"{dataset.name} holds one input and one target, but the model has inputs {names_text(spec.input_names)} "
            f"and outputs {names_text(spec.output_names)}; give an .npz with one array per name."
        )
    split = dataset.test_named(spec, limit)
    doc = _checked_document(
        entries, lambda e: result_several(run_dir, e, ref, spec, split), dataset, len(split), progress
    )
    results = doc.results
    rows = [row for r in results for row in (r.parity_rows or [r.parity_row])]
    shas = [r.sha256 for r in results for _ in (r.parity_rows or [r.parity_row])]
    doc.parity_json = _add_parity_rows(run_dir, rows, shas, len(split))
    return A.Run(run_dir).save(doc)
