"""Checking a bundle on this machine: the tolerances, and each artifact's outputs against the desktop's.

`verify_bundle` runs the golden inputs through every artifact whose runtime is installed and compares
with the expected outputs; an artifact passes when its max |Δ| is within its tolerance
(`tolerance_for`: `toolkit.tolerances.machine_tolerance`, copied into bundle.json). Call
`format.check_files` first: this module trusts the files' sha256.

What is compared depends on the model's output kind (its `model_spec`): probabilities as they are;
logits and regression values raw (not through a softmax, so a difference is never hidden by a saturated
softmax), with the float limits scaled by the size of the outputs (`toolkit.tolerances.LOGITS_AND_VALUES`).
Classification rows carry accuracy and top-1 agreement; regression rows a relative error instead.

A model with several inputs or outputs (golden rows by tensor name): each artifact runs once with every golden
feed (`Runner.infer_named`), and each output is compared with the desktop's by its kind's tolerance, one
row per (artifact, output); boxes are compared as values, class indices index by index. An artifact
passes only when all its outputs do (verify.json's `artifacts`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.bundles.errors import BundleError
from toolkit.bundles.format import SCHEMA_VERSION, is_several, load_array
from toolkit.tolerances import (
    CLASS_INDICES,
    MACHINE_TOLERANCE_DOC,
    PROBABILITIES,
    allowed_diff,
    machine_tolerance,
)

REGRESSED_KINDS = ("values", "boxes")

if TYPE_CHECKING:
    from runtimes.spec import ModelSpec
    from toolkit.run.documents import ArtifactEntry, MachineTolerance


def onnx_output_scale(path: Path, name: str | None = None) -> float | None:
    """Scale of the DequantizeLinear that produces an ONNX model's output (the first, or the one called
    `name`) in QDQ models, if any.

    Needs the `onnx` package (desktop); returns None without it or when there is no such node.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
        graph = model.graph
        names = [o.name for o in graph.output]
        output = names[0] if name is None else name
        if output not in names:
            return None
        node = next((n for n in graph.node if output in n.output), None)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        init = next((i for i in graph.initializer if i.name == node.input[1]), None)
        if init is None:
            return None
        scale = numpy_helper.to_array(init)
        return float(scale) if scale.size == 1 else None
    except Exception:  # a model onnx cannot parse: fall back to the default step
        return None


def output_kind(entry: dict[str, Any]) -> str:
    """An artifact's output kind from its recorded model_spec (a bundle.json entry, read as JSON on the board):
    probabilities (also when none is recorded), logits or values."""
    spec = entry.get("model_spec")
    kind = spec.get("output_kind") if isinstance(spec, dict) else None
    return str(kind) if kind in ("logits", "values") else PROBABILITIES


def tolerance_for(
    entry: ArtifactEntry, model_path: Path | None = None, *, magnitude: float | None = None
) -> MachineTolerance:
    """`toolkit.tolerances.machine_tolerance` for one manifest entry: its precision, output kind and the
    quantized output's scale (from the entry, else an ONNX QDQ model's output DequantizeLinear in `model_path`).
    """
    from toolkit.run.documents import MachineTolerance

    kind = PROBABILITIES if entry.model_spec is None else entry.model_spec.output_kind
    kind = kind if kind in ("logits", "values") else PROBABILITIES
    scale = None if entry.output is None else entry.output.scale
    source = "the model"
    if not scale and entry.precision not in ("fp32", "fp16") and entry.format == "onnx" and model_path is not None:
        scale, source = onnx_output_scale(model_path), "the output DequantizeLinear"
    tolerance = machine_tolerance(entry.precision, kind, magnitude=magnitude, output_scale=scale, scale_source=source)
    return MachineTolerance.model_validate(tolerance)


def tolerance_of_output(
    entry: ArtifactEntry, name: str, model_path: Path | None = None, *, magnitude: float | None = None
) -> MachineTolerance:
    """`tolerance_for` of the output `name` of a model with several outputs: its kind, and its own quantized
    scale (from the entry's spec, else the ONNX QDQ output's DequantizeLinear)."""
    from toolkit.run.documents import MachineTolerance

    assert entry.model_spec is not None  # a manifest entry of a model with several tensors records its spec
    tensor = entry.model_spec.output_named(name)
    kind = tensor.kind or PROBABILITIES
    scale = tensor.scale if tensor.quantized else None
    source = f"the model's output {name}"
    if not scale and entry.precision not in ("fp32", "fp16") and entry.format == "onnx" and model_path is not None:
        scale, source = onnx_output_scale(model_path, name), f"the DequantizeLinear of output {name}"
    tolerance = machine_tolerance(entry.precision, kind, magnitude=magnitude, output_scale=scale, scale_source=source)
    return MachineTolerance.model_validate(tolerance)


def verify_here(bundle: Path, on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Check a bundle (folder or .tar.gz) on this machine: sha256 of every file, then `verify_bundle`.

    Returns the verify report; writing it is the caller's (the API validates it first; a TFLite-only board
    install, `toolkit.cli.board`, has no pydantic and writes it as it is).
    """
    from toolkit.bundles.format import check_files, load_bundle, open_bundle

    with open_bundle(bundle) as root:
        doc = load_bundle(root, bundle)
        check_files(root, doc, bundle)
        return verify_bundle(root, doc, bundle, on_step)


def verify_bundle(
    root: Path, doc: dict[str, Any], label: Path, on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the golden inputs through every artifact whose runtime is installed; compare with the desktop.

    Call `check_files` first. Returns the verify report (see `edgekit verify --help`). An artifact
    passes when its max |Δp| against the expected outputs is within its tolerance.

    Raises:
        BundleError: malformed golden data, or no artifact can run here.
    """
    step = on_step or (lambda _msg: None)
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    if is_several(doc):
        named = _golden_named(root, doc["golden"], label)
        for art in doc["artifacts"]:
            step(f"verify: {art['name']}")
            _verify_named(root, art, label, named, results, skipped)
        images = len(next(iter(named[0].values())))
    else:
        golden = _golden(root, doc["golden"], label)
        for art in doc["artifacts"]:
            step(f"verify: {art['name']}")
            _verify_artifact(root, art, label, golden, results, skipped)
        images = len(golden[0])
    if not results:
        reasons = "; ".join(f"{s['artifact']}: {s['reason']}" for s in skipped)
        raise BundleError(f"none of the artifacts in {label} can run on this machine ({reasons})")
    report = _report(doc, label, images, results, skipped)
    if is_several(doc):
        # An artifact passes only when every one of its outputs does.
        passed: dict[str, bool] = {}
        for r in results:
            passed[r["artifact"]] = passed.get(r["artifact"], True) and bool(r["passed"])
        report["artifacts"] = passed
    return report


def _verify_named(
    root: Path,
    art: dict[str, Any],
    label: Path,
    golden: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    results: list[dict[str, Any]],
    skipped: list[dict[str, str]],
) -> None:
    """`_verify_artifact` for a model with several inputs or outputs: the artifact runs once on every golden
    feed (`infer_named`), then each output is compared with the desktop's: one row per output."""
    from runtimes.errors import InputSpecError, ModelLoadError, RuntimeUnavailableError
    from runtimes.registry import make_runner, runner_class

    feeds, truths = golden
    name = str(art["name"])
    row: dict[str, Any] = {
        "artifact": name,
        "format": art.get("format"),
        "precision": art.get("precision"),
        "runtime": art.get("runtime"),
    }
    started = time.perf_counter()
    try:
        runner = make_runner(root / art["path"], spec=_recorded_spec(art))
        version = runner_class(root / art["path"]).runtime_version()
        with runner:
            outputs = runner.infer_named(feeds)
            row["backend"] = runner.backend()
            is_delegated = getattr(runner, "is_delegated", None)
            delegated = bool(is_delegated()) if is_delegated is not None else None
    except RuntimeUnavailableError as exc:
        skipped.append({"artifact": name, "reason": str(exc)})
        return
    except (ModelLoadError, InputSpecError) as exc:
        failed = {"status": "error", "passed": False, "error": str(exc)}
        for out in art["outputs"]:
            results.append({**row, **_output_facts(out), **failed})
        return
    row["runtime_version"] = version
    row["seconds"] = round(time.perf_counter() - started, 3)
    for out in art["outputs"]:
        out_row = {**row, **_output_facts(out)}
        expected = load_array(root / out["expected"], out["expected"], label)
        got = outputs.get(out["name"])
        if got is None or got.shape != expected.shape:
            have = "no such output" if got is None else f"output shape {list(got.shape)}"
            error = f"{out['name']}: {have}; the desktop's is {list(expected.shape)}"
            results.append({**out_row, "status": "error", "passed": False, "error": error})
            continue
        truth = truths.get(out["name"])
        kind = str(out["kind"])
        # Class labels score probabilities, logits and class indices; values and boxes have float targets.
        regressed = kind in REGRESSED_KINDS
        labels = truth if truth is not None and not regressed and truth.ndim == 1 else None
        targets = truth if truth is not None and regressed else None
        compared = compare_references(got, expected, out, root, label, labels, targets, delegated=delegated, kind=kind)
        results.append({**out_row, **compared})


def _verify_artifact(
    root: Path,
    art: dict[str, Any],
    label: Path,
    golden: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
    results: list[dict[str, Any]],
    skipped: list[dict[str, str]],
) -> None:
    """Run one artifact on the golden inputs here and compare with the desktop's outputs: its row goes to
    `results` (pass, fail, or an error such as a model that does not load), or to `skipped` when its runtime
    is not installed here."""
    from runtimes.errors import ModelLoadError, RuntimeUnavailableError
    from runtimes.registry import make_runner, runner_class

    inputs, labels, targets = golden
    name = str(art["name"])
    expected = load_array(root / art["expected"], art["expected"], label)
    row: dict[str, Any] = {
        "artifact": name,
        "format": art.get("format"),
        "precision": art.get("precision"),
        "runtime": art.get("runtime"),
        "output_kind": output_kind(art),
        "tolerance": art["tolerance"],
    }
    started = time.perf_counter()
    try:
        # The spec the desktop recorded: a file swapped for another model is refused by name.
        runner = make_runner(root / art["path"], spec=_recorded_spec(art))
        version = runner_class(root / art["path"]).runtime_version()
        with runner:
            probs = runner.infer(inputs)
            row["backend"] = runner.backend()
            is_delegated = getattr(runner, "is_delegated", None)  # TFLite: XNNPACK took part of the graph
            delegated = bool(is_delegated()) if is_delegated is not None else None
    except RuntimeUnavailableError as exc:
        skipped.append({"artifact": name, "reason": str(exc)})
        return
    except ModelLoadError as exc:
        results.append({**row, "status": "error", "passed": False, "error": str(exc)})
        return
    row["runtime_version"] = version
    row["seconds"] = round(time.perf_counter() - started, 3)
    if probs.shape != expected.shape:
        error = f"output shape {list(probs.shape)} differs from the expected {list(expected.shape)}"
        results.append({**row, "status": "error", "passed": False, "error": error})
        return
    compared = compare_references(probs, expected, art, root, label, labels, targets, delegated=delegated)
    results.append({**row, **compared})


def _output_facts(out: dict[str, Any]) -> dict[str, Any]:
    """A verify row's fields naming one output of an artifact: its name, kind and tolerance."""
    return {"output": out["name"], "output_kind": out["kind"], "tolerance": out["tolerance"]}


def _report(
    doc: dict[str, Any], label: Path, images: int, results: list[dict[str, Any]], skipped: list[dict[str, str]]
) -> dict[str, Any]:
    """verify.json's content: this machine's results beside what the bundle says about the desktop."""
    from benchmarks.environment import capture_environment
    from toolkit.run.layout import utc_now
    from toolkit.version import __version__

    env = doc.get("environment") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "created_utc": utc_now(),
        "edgekit_version": __version__,
        "bundle": {
            "path": str(label),
            "created_utc": doc.get("created_utc"),
            "source": doc.get("source"),
            "desktop": {k: env.get(k) for k in ("cpu_model", "cpu", "machine", "os", "python", "runtime_versions")},
        },
        "environment": capture_environment(),
        "golden": {"images": images},
        "tolerances": doc.get("tolerances", MACHINE_TOLERANCE_DOC),
        "results": results,
        "skipped": skipped,
        "passed": all(r["passed"] for r in results),
    }


def _recorded_spec(art: dict[str, Any]) -> ModelSpec | None:
    """The ModelSpec the desktop recorded for a bundled artifact (None: a bundle from before specs were stored)."""
    from runtimes.spec import ModelSpec

    data = art.get("model_spec")
    return None if data is None else ModelSpec.from_dict(data)


def compare_references(
    outputs: np.ndarray,
    expected: np.ndarray,
    art: dict[str, Any],
    root: Path,
    label: Path,
    labels: np.ndarray | None,
    targets: np.ndarray | None,
    *,
    delegated: bool | None,
    kind: str | None = None,
) -> dict[str, Any]:
    """`compare` with the desktop's outputs computed the way this runtime computes them.

    XNNPACK (the desktop's default) and LiteRT's built-in int8 kernels round differently, by several
    output steps through a few layers. A quantized TFLite artifact carries both references
    (`expected_builtin`); a runtime that ran no part of it on XNNPACK (`delegated` False: tflite-runtime
    2.13 on 32-bit ARM does not delegate int8) is held to one step of the built-in outputs, any other to
    one step of XNNPACK's. `reference` names the one used.
    """
    kind = kind or output_kind(art)
    if not art.get("expected_builtin"):
        return compare(outputs, expected, labels, art["tolerance"], kind, targets=targets)
    if delegated is not False:
        return {**compare(outputs, expected, labels, art["tolerance"], kind, targets=targets), "reference": "xnnpack"}
    builtin = load_array(root / art["expected_builtin"], art["expected_builtin"], label)
    if builtin.shape != expected.shape:
        raise BundleError(
            f"{art['expected_builtin']} in {label} has shape {list(builtin.shape)}, not "
            f"{list(expected.shape)}; re-create the bundle."
        )
    return {**compare(outputs, builtin, labels, art["tolerance"], kind, targets=targets), "reference": "builtin"}


def _golden(root: Path, golden: dict[str, Any], label: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The golden inputs, class labels (None for regression) and regression targets (None for classification)."""
    inputs = load_array(root / golden["inputs"], golden["inputs"], label)
    labels: np.ndarray | None = None
    targets: np.ndarray | None = None
    if golden.get("labels"):
        labels = load_array(root / golden["labels"], golden["labels"], label)
    if golden.get("targets"):
        targets = load_array(root / golden["targets"], golden["targets"], label)
    # The shape the bundle recorded at build time (the model's input), not a literal one.
    recorded = golden.get("shape")
    usable = isinstance(recorded, list) and len(recorded) > 1 and all(type(d) is int for d in recorded)
    sample = list(recorded[1:]) if usable and isinstance(recorded, list) else None
    if (
        inputs.dtype != np.float32
        or inputs.ndim < 2
        or len(inputs) == 0
        or (labels is not None and labels.shape != (len(inputs),))
        or (targets is not None and (targets.ndim < 1 or len(targets) != len(inputs)))
        or (sample is not None and list(inputs.shape[1:]) != sample)
    ):
        want = "[N, " + ", ".join(map(str, sample)) + "]" if sample else "[N, …]"
        have = f"labels {list(labels.shape)}" if labels is not None else "no labels"
        if targets is not None:
            have += f", targets {list(targets.shape)}"
        raise BundleError(
            f"golden data in {label} has inputs {inputs.dtype}{list(inputs.shape)} and {have}; "
            f"expected float32 {want} and one label or target per input. Re-create the bundle."
        )
    return inputs, labels, targets


def compare(
    outputs: np.ndarray,
    expected: np.ndarray,
    labels: np.ndarray | None,
    tolerance: dict[str, Any],
    output_kind: str = PROBABILITIES,
    *,
    targets: np.ndarray | None = None,
) -> dict[str, Any]:
    """One artifact's outputs here against the desktop's: the verify.json fields of a result row.

    Outputs are compared raw whatever their kind (the tolerance says how far apart they may be);
    classification rows add accuracy (when there are labels) and top-1 agreement, regression rows
    ("values", "boxes") the max difference relative to max |expected| and, with targets, the mean abs error.
    Class indices are compared index by index (`_compare_indices`).
    """
    if output_kind == CLASS_INDICES:
        return _compare_indices(outputs, expected, labels, tolerance)
    diff = np.abs(outputs.astype(np.float64) - expected.astype(np.float64))
    limit = allowed_diff(float(tolerance["max_abs"]))
    max_abs = float(diff.max())
    passed = max_abs <= limit
    step_size = tolerance.get("step")
    row: dict[str, Any] = {
        "status": "pass" if passed else "fail",
        "passed": passed,
        "max_abs_diff": max_abs,
        "mean_abs_diff": float(diff.mean()),
        "max_diff_steps": None if not step_size else round(max_abs / float(step_size), 3),
        "values_over_tolerance": int((diff > limit).sum()),
    }
    if output_kind in REGRESSED_KINDS:
        scale = float(np.abs(expected).max()) or 1.0
        row.update(accuracy=None, desktop_accuracy=None, agreement=None, max_rel_error=max_abs / scale)
        if targets is not None and targets.size == outputs.size:
            flat = targets.reshape(outputs.shape).astype(np.float64)
            row["target_mae"] = float(np.abs(outputs - flat).mean())
            row["desktop_target_mae"] = float(np.abs(expected - flat).mean())
        return row
    pred, ref_pred = outputs.argmax(axis=1), expected.argmax(axis=1)
    return {
        **row,
        "accuracy": None if labels is None else float(np.mean(pred == labels)),
        "desktop_accuracy": None if labels is None else float(np.mean(ref_pred == labels)),
        "agreement": float(np.mean(pred == ref_pred)),
    }


def _compare_indices(
    outputs: np.ndarray, expected: np.ndarray, labels: np.ndarray | None, tolerance: dict[str, Any]
) -> dict[str, Any]:
    """Class indices here against the desktop's: the share of rows with the same index, against the
    tolerance's `min_agreement`; |Δ| is 1 where an index differs, so `max_abs_diff` is 0 or 1."""
    pred, ref = outputs.reshape(len(outputs)), expected.reshape(len(expected))
    differs = pred != ref
    agreement = float(np.mean(~differs)) if len(pred) else 1.0
    floor = tolerance.get("min_agreement")
    passed = agreement >= (1.0 if floor is None else float(floor))
    return {
        "status": "pass" if passed else "fail",
        "passed": passed,
        "max_abs_diff": float(differs.max()) if len(pred) else 0.0,
        "mean_abs_diff": float(differs.mean()) if len(pred) else 0.0,
        "max_diff_steps": None,
        "values_over_tolerance": int(differs.sum()),
        "accuracy": None if labels is None else float(np.mean(pred == labels)),
        "desktop_accuracy": None if labels is None else float(np.mean(ref == labels)),
        "agreement": agreement,
    }


def _golden_named(
    root: Path, golden: dict[str, Any], label: Path
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A several-tensor bundle's golden feeds (float32, by input name) and truths (by output name), checked
    against the shapes bundle.json recorded and for one shared number of rows."""
    arrays: list[dict[str, np.ndarray]] = [{}, {}]
    rows: set[int] = set()
    for part, found in (("feeds", arrays[0]), ("truths", arrays[1])):
        for name, meta in golden[part].items():
            array = load_array(root / meta["path"], meta["path"], label)
            recorded = meta.get("shape")
            if (
                array.ndim < 1
                or list(array.shape) != recorded
                or str(array.dtype) != meta.get("dtype")
                or (part == "feeds" and array.dtype != np.float32)
            ):
                raise BundleError(
                    f"{meta['path']} in {label} holds {array.dtype}{list(array.shape)}; bundle.json records "
                    f"{meta.get('dtype')}{recorded}. Re-create the bundle."
                )
            found[str(name)] = array
            rows.add(len(array))
    if len(rows) != 1 or 0 in rows:
        raise BundleError(
            f"the golden arrays in {label} hold different numbers of rows ({sorted(rows)}); re-create it."
        )
    return arrays[0], arrays[1]
