"""The published JSON Schemas (docs/schemas/<name>.schema.json), generated from the document models.

`python -m toolkit.run.documents --write-schemas docs/schemas` writes them; tests/test_documents.py
fails when the files in docs/ differ from what the models generate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.run.documents.base import Document
from toolkit.run.documents.bench import BenchDocument
from toolkit.run.documents.bundle import BundleDocument
from toolkit.run.documents.diagnose import DiagnoseDocument
from toolkit.run.documents.gate import GateDocument
from toolkit.run.documents.manifest import ManifestDocument
from toolkit.run.documents.mcu import McuDocument
from toolkit.run.documents.mixed import MixedDocument
from toolkit.run.documents.options import RunOptions
from toolkit.run.documents.parity import ParityDocument
from toolkit.run.documents.source import DatasetDocument, ModelDocument
from toolkit.run.documents.train import TrainDocument
from toolkit.run.documents.verify import VerifyDocument

# Schema name (docs/schemas/<name>.schema.json) → model, in the order a run writes them.
DOCUMENTS: dict[str, type[Document]] = {
    "run": RunOptions,
    "model": ModelDocument,
    "dataset": DatasetDocument,
    "train": TrainDocument,
    "manifest": ManifestDocument,
    "mixed": MixedDocument,
    "parity": ParityDocument,
    "bench": BenchDocument,
    "gate": GateDocument,
    "bundle": BundleDocument,
    "verify": VerifyDocument,
    "mcu": McuDocument,
    "diagnose": DiagnoseDocument,
}
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def kind_for(path: Path) -> type[Document]:
    """The document class for a file name (`bench.json`, `h4b.verify.json`, ...).

    Raises:
        KeyError: the name is not one of the documents.
    """
    name = Path(path).name
    for kind in DOCUMENTS.values():
        if name == kind.FILE or name.endswith("." + kind.FILE):
            return kind
    raise KeyError(f"{name} is not a run document ({', '.join(k.FILE for k in DOCUMENTS.values())})")


def _drop_property_titles(node: Any) -> None:
    # Pydantic titles every property ("P50 Ms"); they repeat the key and only add noise for readers.
    if isinstance(node, dict):
        for prop in (node.get("properties") or {}).values():
            if isinstance(prop, dict):
                prop.pop("title", None)
        for value in node.values():
            _drop_property_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_property_titles(value)


def json_schema(kind: type[Document]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the files `kind` loads."""
    schema = kind.model_json_schema(mode="validation")
    _drop_property_titles(schema)
    return {"$schema": DIALECT, **schema}


def schema_text(kind: type[Document]) -> str:
    """The schema as written to docs/schemas (stable: same models, same bytes)."""
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write `<name>.schema.json` for every document into `directory`; return the paths."""
    from runtimes.files import ensure_dir, write_text_atomic

    directory = Path(directory)
    ensure_dir(directory)
    paths = []
    for name, kind in DOCUMENTS.items():
        path = directory / f"{name}.schema.json"
        write_text_atomic(path, schema_text(kind))
        paths.append(path)
    return paths


def stale_schemas(directory: Path) -> list[str]:
    """Names of the schema files in `directory` that are missing or differ from the models."""
    directory = Path(directory)
    stale = []
    for name, kind in DOCUMENTS.items():
        path = directory / f"{name}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != schema_text(kind):
            stale.append(path.name)
    return stale
