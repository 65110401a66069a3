"""Reading a run directory (or a lone bench.json) into the documents a report is built from."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.reports.rules import machine_label

Doc = dict[str, Any]
DOC_FILES = (("train", "train.json"), ("manifest", "manifest.json"), ("parity", "parity.json"), ("bench", "bench.json"))
GALLERY_MAX_BYTES = 2_000_000  # larger PNGs are linked from report.md but not embedded in report.html


@dataclass
class RunDocs:
    """The parsed JSON documents of one run (one machine); any of them may be missing.

    Attributes:
        name: the run's name in the report (the directory name by default).
        label: the machine label (default: from bench.json's environment).
        train, manifest, parity, bench: the run's train.json, manifest.json, parity.json and bench.json.
        diagnose: diagnose/diagnose.json when `edgekit diagnose` ran.
        galleries: the diagnose gallery PNG of each artifact, base64, embedded in report.html.
        mcu: mcu.json when `edgekit mcu` ran (TensorFlow Lite Micro: arena, flash, boards).
        mixed: mixed.json when `edgekit export --max-accuracy-drop` ran (the float/int8 curve).
        remote: boards measured with `--remote`: `{host: {"bench": bench.json, "verify": verify.json}}`.
        model, dataset: model.json and dataset.json of a run made from the user's own model (`--model`).
    """

    name: str
    label: str = ""
    train: Doc | None = None
    manifest: Doc | None = None
    parity: Doc | None = None
    bench: Doc | None = None
    diagnose: Doc | None = None
    galleries: dict[str, str] = field(default_factory=dict)
    mcu: Doc | None = None
    mixed: Doc | None = None
    remote: dict[str, dict[str, Doc]] = field(default_factory=dict)
    model: Doc | None = None
    dataset: Doc | None = None

    def __post_init__(self) -> None:
        if not self.label:
            self.label = machine_label(self.bench)


def _read(path: Path) -> Doc:
    from toolkit.run.layout import read_json

    return read_json(path)


def load_run(path: Path, *, name: str | None = None, label: str | None = None) -> RunDocs:
    """A run directory, or a single bench.json (e.g. copied back from a board), as a report input.

    A bench.json inside a run directory brings the rest of that run (train, manifest, parity) along.

    Args:
        path: a run directory or a bench.json file.
        name: the run's name in the report (default: the directory name, or the file's stem).
        label: the machine label (default: from bench.json's environment).

    Returns:
        The documents found; missing ones are None.

    Raises:
        RunDirError: the path does not exist or holds no edgekit JSON file.
    """
    from toolkit.errors import RunDirError

    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist; pass a run directory or a bench.json file.")
    docs: dict[str, Doc | None]
    if path.is_file():
        bench = _read(path)
        if not isinstance(bench.get("results"), list):
            raise RunDirError(f"{path} is not an edgekit bench.json (no results list).")
        docs = {key: _read(path.parent / n) if (path.parent / n).is_file() else None for key, n in DOC_FILES}
        docs["bench"] = bench
        default = path.parent.name if docs["manifest"] else path.stem
        extra: Doc = _user_model(path.parent) if docs["manifest"] else {}
    else:
        docs = {key: _read(path / n) if (path / n).is_file() else None for key, n in DOC_FILES}
        if not any(docs.values()):
            raise RunDirError(f"{path} holds no edgekit JSON files; pass a run directory or a bench.json file.")
        default = path.resolve().name
        extra = {**_diagnosis(path), **_user_model(path)}
        if (path / "mcu.json").is_file():
            extra["mcu"] = _read(path / "mcu.json")
        if (path / "mixed.json").is_file():
            extra["mixed"] = _read(path / "mixed.json")
    return RunDocs(
        name=name or default,
        label=label or "",
        train=docs["train"],
        manifest=docs["manifest"],
        parity=docs["parity"],
        bench=docs["bench"],
        diagnose=extra.get("diagnose"),
        galleries=extra.get("galleries", {}),
        mcu=extra.get("mcu"),
        mixed=extra.get("mixed"),
        model=extra.get("model"),
        dataset=extra.get("dataset"),
    )


def _user_model(run_dir: Path) -> Doc:
    """model.json and dataset.json, when the run was made from the user's own model (`--model`)."""
    from toolkit.model.run_source import recorded_dataset, recorded_model

    found = {"model": recorded_model(run_dir), "dataset": recorded_dataset(run_dir)}
    return {k: v for k, v in found.items() if v is not None}


def _diagnosis(run_dir: Path) -> Doc:
    """diagnose.json and its gallery PNGs (base64), when `edgekit diagnose` ran on this run."""
    path = run_dir / "diagnose" / "diagnose.json"
    if not path.is_file():
        return {}
    doc = _read(path)
    galleries = {}
    for a in doc.get("artifacts", []):
        file = (a.get("gallery") or {}).get("file")
        png = run_dir / "diagnose" / Path(str(file)).name if file else None
        if png is not None and png.is_file() and png.stat().st_size < GALLERY_MAX_BYTES:
            galleries[str(a["artifact"])] = base64.b64encode(png.read_bytes()).decode()
    return {"diagnose": doc, "galleries": galleries}


def distinct_names(runs: list[RunDocs]) -> None:
    """Rename runs named alike (runs/latest on two machines) to `name (2)`, `name (3)` so they stay apart."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} ({seen[r.name]})"
