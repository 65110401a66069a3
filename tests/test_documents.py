"""Typed run documents: every file a real run writes (and every saved run) loads, round-trips unchanged,
matches the published JSON Schema in docs/schemas, and a broken file fails with one line naming it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from toolkit.errors import RunDirError, ToolkitError
from toolkit.run.documents import (
    DOCUMENTS,
    BenchDocument,
    BundleDocument,
    Document,
    DocumentError,
    GateDocument,
    GateLimits,
    ManifestDocument,
    RunOptions,
    dump_document,
    kind_for,
    load_document,
    parse_document,
    stale_schemas,
    unknown_fields,
    write_document,
)
from toolkit.run.documents.schemas import schema_text

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "docs" / "schemas"
SAVED = sorted([*REPO.glob("benchmarks/results/*/*.json"), *REPO.glob("benchmarks/results/*/*/diagnose/diagnose.json")])
Edgekit = Callable[..., subprocess.CompletedProcess[str]]


def schema_for(kind: type[Document]) -> dict[str, Any]:
    name = next(name for name, k in DOCUMENTS.items() if k is kind)
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return schema


def check_document(path: Path, kind: type[Document] | None = None) -> Document:
    """Load `path` with its model and prove the model and the published schema both describe it fully."""
    kind = kind or kind_for(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    doc = load_document(path, kind)
    assert unknown_fields(doc) == [], f"{path.name}: fields no model declares (add them to the model)"
    assert dump_document(doc) == raw, f"{path.name} does not round-trip unchanged"
    errors = list(jsonschema.Draft202012Validator(schema_for(kind)).iter_errors(raw))
    assert not errors, f"{path.name}: {errors[0].json_path}: {errors[0].message}"
    return doc


# -- the published schemas ---------------------------------------------------------------------------
def test_published_schemas_are_up_to_date() -> None:
    """docs/schemas holds exactly one file per document, as the models generate it today."""
    assert stale_schemas(SCHEMAS) == [], "run: python -m toolkit.run.documents --write-schemas docs/schemas"
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(f"{n}.schema.json" for n in DOCUMENTS)


@pytest.mark.parametrize("name", list(DOCUMENTS))
def test_published_schema_is_a_valid_schema_that_requires_schema_version(name: str) -> None:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"][0] == "schema_version" and schema["properties"]["schema_version"]["const"] == 1
    assert schema_text(DOCUMENTS[name]) == schema_text(DOCUMENTS[name])  # deterministic


def test_write_schemas_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.run.documents", "--write-schemas", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert stale_schemas(tmp_path / "s") == []
    (tmp_path / "s" / "bench.schema.json").write_text("{}")
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.run.documents", "--check", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 1 and "bench.schema.json" in proc.stderr


# -- saved runs (full size, every field) -------------------------------------------------------------
def test_saved_runs_exist() -> None:
    assert {p.name for p in SAVED} >= {"train.json", "manifest.json", "parity.json", "bench.json"}


@pytest.mark.parametrize("path", SAVED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_run_documents_validate(path: Path) -> None:
    check_document(path)


# -- a real run made here ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def measured_run(small_run: Path, tmp_path_factory: pytest.TempPathFactory, edgekit: Edgekit) -> Path:
    """small_run (train + export) copied, then parity, a quick bench, gate, bundle and verify on it."""
    import shutil

    run = Path(shutil.copytree(small_run, tmp_path_factory.mktemp("documents") / "run"))
    for args in (
        ("parity", str(run), "--limit", "300"),
        ("bench", str(run), "-b", "1", "-t", "1", "--quick", "--no-peak", "--min-runs", "16"),
        ("bundle", str(run), "--out", str(run.parent / "bundle"), "--golden", "16"),
        ("verify", str(run.parent / "bundle")),
    ):
        proc = edgekit(*args)
        assert proc.returncode in (0, 3), f"edgekit {args[0]}: {proc.stderr[-2000:]}"
    return run


def test_every_document_of_a_real_run_validates(measured_run: Path) -> None:
    for name in ("train.json", "manifest.json", "parity.json", "bench.json"):
        check_document(measured_run / name)
    bundle = measured_run.parent / "bundle"
    doc = check_document(bundle / "bundle.json")
    assert isinstance(doc, BundleDocument) and doc.kind == "edgekit-bundle" and doc.artifacts[0].tolerance.max_abs > 0
    check_document(bundle / "manifest.json")
    check_document(bundle / "verify.json")
    bench = load_document(measured_run / "bench.json", BenchDocument)
    assert {r.artifact for r in bench.results} >= {"keras-fp32", "tflite-int8", "onnx-fp32"}
    assert all(r.p50_ms > 0 and r.options is not None for r in bench.results)
    manifest = load_document(measured_run / "manifest.json", ManifestDocument)
    reference = manifest.artifact("keras-fp32")
    assert reference is not None and reference.input is None  # the reference entry lists no tensors
    export = manifest.artifact("tflite-int8")
    assert export is not None and export.input is not None and export.input.scale


def test_gate_documents_validate(measured_run: Path, edgekit: Edgekit, tmp_path: Path) -> None:
    """gate.json of a passing gate and of a failing one (a baseline twice as fast)."""
    proc = edgekit("gate", str(measured_run), "--baseline", str(measured_run))
    assert proc.returncode == 0, proc.stderr
    passed = check_document(measured_run / "gate.json")
    assert isinstance(passed, GateDocument) and passed.passed and passed.regressions == []

    faster = json.loads((measured_run / "bench.json").read_text())
    for row in faster["results"]:
        row["p50_ms"] /= 2
    (tmp_path / "base.json").write_text(json.dumps(faster))
    proc = edgekit("gate", str(measured_run), "--baseline", str(tmp_path / "base.json"))
    assert proc.returncode == 3, proc.stderr
    failed = check_document(measured_run / "gate.json", GateDocument)
    assert isinstance(failed, GateDocument) and not failed.passed and failed.regressions
    assert failed.regressions[0].metric == "p50_ms" and failed.regressions[0].message


def test_run_options_as_the_pipeline_writes_them(tmp_path: Path) -> None:
    """run.json from the same pieces `edgekit pipeline` stores (TrainConfig, targets, BenchSettings)."""
    from toolkit.model.reference import TrainConfig
    from toolkit.steps.bench_settings import QUICK_BENCH
    from toolkit.steps.export import parse_targets

    options = {
        "schema_version": 1,
        "train": dump_document(TrainConfig(epochs=1, train_limit=4000)),
        "targets": [[f.value, p.value] for f, p in parse_targets(None, None)],
        "calibration_size": 500,
        "bench": dump_document(QUICK_BENCH),
        "data": None,
        "allow_unverified": False,
    }
    (tmp_path / "run.json").write_text(json.dumps(options, indent=2))
    doc = check_document(tmp_path / "run.json")
    assert isinstance(doc, RunOptions) and doc.bench.threads is None and doc.targets[0] == ("tflite", "fp32")


# -- loading, writing, errors ------------------------------------------------------------------------
@pytest.fixture
def saved_bench() -> dict[str, Any]:
    path = next(p for p in SAVED if p.name == "bench.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_a_wrong_field_names_the_file_the_field_and_the_fix(tmp_path: Path, saved_bench: dict[str, Any]) -> None:
    saved_bench["results"][3]["p50_ms"] = "fast"
    path = write(tmp_path / "runs" / "x" / "bench.json", saved_bench)
    with pytest.raises(DocumentError) as info:
        load_document(path, BenchDocument)
    message = str(info.value)
    assert message == (
        f"{path} is not a valid bench.json: results[3].p50_ms: Input should be a valid number, unable to parse "
        "string as a number, got 'fast'; re-run `edgekit bench`."
    )
    assert isinstance(info.value, ToolkitError) and isinstance(info.value, RunDirError)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist; re-run `edgekit bench`"),
        ("{not json", "is not valid JSON"),
        ([1, 2], "does not hold a JSON object"),
        ({"schema_version": 2}, "has schema_version 2; this edgekit reads bench.json schema_version 1; upgrade"),
        ({"schema_version": 0}, "has schema_version 0; this edgekit reads bench.json schema_version 1; re-run"),
        ({"results": []}, "is not a valid bench.json: schema_version: Field required (and"),
        ({"schema_version": 1}, "is not a valid bench.json: created_utc: Field required (and 7 more problems)"),
    ],
)
def test_broken_files_fail_with_one_line(tmp_path: Path, content: Any, expected: str) -> None:
    path = tmp_path / "bench.json"
    if content is not None:
        write(path, content)
    with pytest.raises(DocumentError) as info:
        load_document(path, BenchDocument)
    assert expected in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_missing_row_field_and_a_wrong_bundle_kind(tmp_path: Path, saved_bench: dict[str, Any]) -> None:
    del saved_bench["results"][2]["artifact"]
    with pytest.raises(DocumentError, match=r"results\[2\]\.artifact: Field required; re-run"):
        parse_document(saved_bench, BenchDocument, source="runs/x/bench.json")
    with pytest.raises(DocumentError, match="kind: Input should be 'edgekit-bundle', got 'zip'"):
        parse_document({"schema_version": 1, "kind": "zip"}, BundleDocument)


def test_write_document_round_trips_and_keeps_unknown_fields(tmp_path: Path, saved_bench: dict[str, Any]) -> None:
    """A newer edgekit's additive field survives an older reader that rewrites the file."""
    saved_bench["future_field"] = {"x": 1}
    saved_bench["results"][0]["new_metric_ms"] = 1.5
    doc = parse_document(saved_bench, BenchDocument)
    assert unknown_fields(doc) == ["future_field", "results[0].new_metric_ms"]
    write_document(tmp_path / "bench.json", doc)
    assert dump_document(doc) == saved_bench
    text = (tmp_path / "bench.json").read_text()
    assert text == json.dumps(saved_bench, indent=2) + "\n"  # the same layout as every other writer
    assert load_document(tmp_path / "bench.json", BenchDocument) == doc


def test_a_document_built_in_code_writes_only_what_it_was_given() -> None:
    doc = GateDocument(
        schema_version=1,
        baseline="main/bench.json",
        limits=GateLimits(
            max_latency_regression=0.1,
            max_accuracy_drop_pt=0.5,
            max_size_increase=0.1,
            max_rss_increase=None,
            metric="p50_ms",
        ),
        passed=True,
        regressions=[],
    )
    assert list(dump_document(doc)) == ["schema_version", "baseline", "limits", "passed", "regressions"]
    assert dump_document(doc)["limits"]["max_rss_increase"] is None


def test_manifest_entries_take_an_optional_model_spec() -> None:
    """`model_spec` is runtimes.spec.ModelSpec itself: read with from_dict, written back as to_dict wrote it."""
    from runtimes.spec import ModelSpec
    from toolkit.model.spec import reference_spec

    path = next(p for p in SAVED if p.name == "manifest.json")
    data = json.loads(path.read_text())
    for a in data["artifacts"]:
        a.pop("model_spec", None)
    data["artifacts"][1]["model_spec"] = reference_spec().to_dict()
    doc = parse_document(data, ManifestDocument)
    spec = doc.artifacts[1].model_spec
    assert isinstance(spec, ModelSpec) and spec == reference_spec() and doc.artifacts[0].model_spec is None
    assert unknown_fields(doc) == [] and dump_document(doc) == data
    data["artifacts"][1]["model_spec"] = {"inputs": [], "num_classes": 10}  # not a ModelSpec: one line
    with pytest.raises(DocumentError, match=r"artifacts\[1\]\.model_spec: Value error, model spec lacks 'input'"):
        parse_document(data, ManifestDocument)


def test_kind_for_names() -> None:
    assert kind_for(Path("runs/x/bench.json")) is BenchDocument
    assert kind_for(Path("device.verify.json")).FILE == "verify.json"
    with pytest.raises(KeyError):
        kind_for(Path("report.json"))


def test_help_does_not_import_pydantic() -> None:
    """The documents are imported inside the commands that read or write them, not on `edgekit --help`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "toolkit.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "pydantic" not in imported and "toolkit.run.documents" not in imported


def test_documents_import_no_heavy_libraries() -> None:
    code = (
        "import sys, toolkit.run.documents; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'rich', 'typer', 'onnx', 'matplotlib') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.strip() == "[]"


def test_remote_and_emulated_sections_are_typed(measured_run: Path, tmp_path: Path) -> None:
    """The `remote` section `--remote` adds to a fetched bench.json/verify.json, and verify --emulate's `emulation`."""
    remote = {
        "host": "pi@board",
        "remote_dir": "~/.cache/edgekit-remote",
        "command": "bench",
        "args": ["--quick"],
        "exit_code": 0,
        "setup": "reused",
        "setup_seconds": 0.4,
        "seconds": 12.5,
        "started_unix": 1764561000.0,
        "finished_unix": 1764561012.5,
    }
    bench = json.loads((measured_run / "bench.json").read_text())
    check_document(write(tmp_path / "remote" / "pi" / "bench.json", {**bench, "remote": remote}))
    verify = json.loads((measured_run.parent / "bundle" / "verify.json").read_text())
    emulation = {
        "board": "pi4",
        "model": "Raspberry Pi 4 Model B",
        "qemu_cpu": "cortex-a72",
        "core": "Cortex-A72",
        "cpuinfo_features": "fp asimd",
        "qemu": "qemu-aarch64 8.2",
        "host": {"machine": "x86_64"},
        "rootfs": {"path": "/cache/root", "state": "reused"},
        "prepare_seconds": 1.0,
        "verify_seconds": 20.0,
        "note": "QEMU user-mode",
    }
    doc = check_document(write(tmp_path / "pi4.verify.json", {**verify, "emulation": emulation, "remote": remote}))
    assert doc.model_dump()["emulation"]["board"] == "pi4"


def test_run_knows_where_each_document_lives_and_loads_it_typed(tmp_path: Path) -> None:
    """`Run`: every document at its place (diagnose.json under diagnose/), typed load and save, None when absent."""
    import shutil

    from toolkit.run.documents import DiagnoseDocument, McuDocument, ParityDocument
    from toolkit.run.layout import Run

    saved = next(p.parent for p in SAVED if p.name == "diagnose.json").parent
    run = Run(Path(shutil.copytree(saved, tmp_path / "run")))
    assert run.path(DiagnoseDocument) == run.dir / "diagnose" / "diagnose.json"
    assert run.path(ParityDocument) == run.dir / "parity.json" and run.name == "run"
    diagnose = run.load(DiagnoseDocument)
    assert diagnose.artifacts and diagnose.artifact(diagnose.artifacts[0].artifact) is diagnose.artifacts[0]
    assert run.find(McuDocument) is None and not run.has(McuDocument)
    manifest = run.manifest()
    reference = run.reference(manifest)
    assert reference.name == "keras-fp32" and reference.model_spec is not None
    with pytest.raises(RunDirError, match=r"model\.keras is listed in the manifest but missing"):
        run.verified_path(reference)  # saved runs keep no model files
    parity = run.load(ParityDocument)
    parity.passed = not parity.passed
    run.save(parity)
    assert run.load(ParityDocument).passed is parity.passed
    (run.dir / "manifest.json").unlink()
    with pytest.raises(RunDirError, match=r"has no manifest\.json; run `edgekit export` first"):
        run.manifest()
