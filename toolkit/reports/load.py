"""Reading a run directory (or a lone bench.json) into the typed documents a report is built from."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.reports.rules import machine_label

if TYPE_CHECKING:
    from toolkit.remote.hosts import HostDocuments
    from toolkit.run.documents import (
        BenchDocument,
        DatasetDocument,
        DiagnoseDocument,
        ManifestDocument,
        McuDocument,
        MixedDocument,
        ModelDocument,
        ParityDocument,
        TrainDocument,
    )
    from toolkit.run.layout import Run

GALLERY_MAX_BYTES = 2_000_000  # larger PNGs are linked from report.md but not embedded in report.html


@dataclass
class RunDocs:
    """The documents of one run (one machine); any of them may be missing.

    Attributes:
        name: the run's name in the report (the directory name by default).
        label: the machine label (default: from bench.json's environment).
        train, manifest, parity, bench: the run's train.json, manifest.json, parity.json and bench.json.
        diagnose: diagnose/diagnose.json when `edgekit diagnose` ran.
        galleries: the diagnose gallery PNG of each artifact, base64, embedded in report.html.
        mcu: mcu.json when `edgekit mcu` ran (TensorFlow Lite Micro: arena, flash, boards).
        mixed: mixed.json when `edgekit export --max-drop` ran (the float/int8 curve).
        remote: boards measured with `--remote`, by host (their bench.json and verify.json).
        model, dataset: model.json and dataset.json of a run made from the user's own model (`--model`).
    """

    name: str
    label: str = ""
    train: TrainDocument | None = None
    manifest: ManifestDocument | None = None
    parity: ParityDocument | None = None
    bench: BenchDocument | None = None
    diagnose: DiagnoseDocument | None = None
    galleries: dict[str, str] = field(default_factory=dict)
    mcu: McuDocument | None = None
    mixed: MixedDocument | None = None
    remote: dict[str, HostDocuments] = field(default_factory=dict)
    model: ModelDocument | None = None
    dataset: DatasetDocument | None = None

    def __post_init__(self) -> None:
        if not self.label:
            self.label = machine_label(self.bench)


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
        RunDirError: the path does not exist or holds no edgekit JSON file; `DocumentError` (one) when a
            document it holds is not valid.
    """
    from toolkit.errors import RunDirError
    from toolkit.run.documents import (
        BenchDocument,
        DatasetDocument,
        DiagnoseDocument,
        ManifestDocument,
        McuDocument,
        MixedDocument,
        ModelDocument,
        ParityDocument,
        TrainDocument,
        load_document,
    )
    from toolkit.run.layout import Run

    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path} does not exist; pass a run directory or a bench.json file.")
    run = Run(path.parent if path.is_file() else path)
    docs = RunDocs(
        name="",
        train=run.find(TrainDocument),
        manifest=run.find(ManifestDocument),
        parity=run.find(ParityDocument),
    )
    if path.is_file():
        docs.bench = load_document(path, BenchDocument)
        default = path.parent.name if docs.manifest else path.stem
    else:
        docs.bench = run.find(BenchDocument)
        if not any((docs.train, docs.manifest, docs.parity, docs.bench)):
            raise RunDirError(f"{path} holds no edgekit JSON files; pass a run directory or a bench.json file.")
        default = path.resolve().name
        docs.diagnose = run.find(DiagnoseDocument)
        docs.galleries = _galleries(run, docs.diagnose)
        docs.mcu = run.find(McuDocument)
        docs.mixed = run.find(MixedDocument)
    if path.is_dir() or docs.manifest:  # model.json, dataset.json: a run made from the user's own model
        docs.model, docs.dataset = run.find(ModelDocument), run.find(DatasetDocument)
    docs.name = name or default
    docs.label = label or machine_label(docs.bench)
    return docs


def _galleries(run: Run, diagnose: DiagnoseDocument | None) -> dict[str, str]:
    """The diagnose gallery PNGs (base64) small enough to embed, by artifact."""
    from toolkit.run.layout import DIAGNOSE_DIR

    galleries = {}
    for a in diagnose.artifacts if diagnose else []:
        png = run.dir / DIAGNOSE_DIR / Path(a.gallery.file).name if a.gallery.file else None
        if png is not None and png.is_file() and png.stat().st_size < GALLERY_MAX_BYTES:
            galleries[a.artifact] = base64.b64encode(png.read_bytes()).decode()
    return galleries


def distinct_names(runs: list[RunDocs]) -> None:
    """Rename runs named alike (runs/latest on two machines) to `name (2)`, `name (3)` so they stay apart."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} ({seen[r.name]})"
