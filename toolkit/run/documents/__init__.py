"""The run documents as typed pydantic models, and the one place they are loaded, checked and written.

One module per file: `train.json` (TrainDocument), `manifest.json` (ManifestDocument), `parity.json`
(ParityDocument), `model.json`/`dataset.json` (ModelDocument, DatasetDocument: a user's own model
and data), `mixed.json` (MixedDocument: the int8/float mix under an accuracy budget), `bench.json`
(BenchDocument), `gate.json` (GateDocument), `bundle.json` (BundleDocument), `verify.json`
(VerifyDocument), `mcu.json` (McuDocument), `diagnose/diagnose.json` (DiagnoseDocument) and `run.json`
(RunOptions, the pipeline's saved options, whose `bench` is the `BenchOptions` `toolkit.bench` takes).
Where a run directory keeps each of them is `toolkit.run.layout.Run`'s business. Every document has
`schema_version` (1); its JSON Schema is published under docs/schemas/ (`schemas.py`,
`python -m toolkit.run.documents --write-schemas docs/schemas`).

    doc = load_document(run_dir / "bench.json", BenchDocument)   # DocumentError: one line, names the file
    write_document(run_dir / "bench.json", doc)                  # atomic

Importing this package imports pydantic (~100 ms): import it inside the functions that read or write
documents, never at the top of a module that `edgekit --help` or `edgekit predict` loads.

May import: pydantic, `runtimes.files` (atomic writes), `runtimes.spec` (`TensorSpec`, a dataclass the
documents use as it is) and `toolkit.errors`. Nothing else of toolkit, no numpy, TensorFlow or Rich.
"""

from __future__ import annotations

from toolkit.run.documents.base import (
    SCHEMA_VERSION,
    Document,
    DocumentError,
    Part,
    dump_document,
    load_document,
    parse_document,
    unknown_fields,
    write_document,
)
from toolkit.run.documents.bench import BenchDocument, BenchMethod, BenchRow, RunnerOptions
from toolkit.run.documents.bundle import (
    BundleArtifact,
    BundleDocument,
    BundleFile,
    BundleGolden,
    BundleOutput,
    BundleSource,
    GoldenTensor,
    MachineTolerance,
)
from toolkit.run.documents.common import (
    CpuInfo,
    Environment,
    RemoteInfo,
    SkippedArtifact,
    StoredModelSpec,
    TrainingSummary,
    TrainOptions,
)
from toolkit.run.documents.diagnose import (
    Cause,
    DiagnosedArtifact,
    DiagnoseDocument,
    Gallery,
    LayerRow,
    OutputKindError,
    SpeedRecord,
)
from toolkit.run.documents.gate import GateCpu, GateDocument, GateLimits, GateRegression
from toolkit.run.documents.manifest import ArtifactEntry, Calibration, ManifestDocument, QuantizationRecipe
from toolkit.run.documents.mcu import (
    McuBoardFit,
    McuDocument,
    McuEmulated,
    McuFirmwareSize,
    McuOutputParity,
    McuParity,
    McuResult,
)
from toolkit.run.documents.mixed import MixedDocument, MixedFormat, MixedLayer, MixedPoint
from toolkit.run.documents.options import BenchOptions, RunOptions
from toolkit.run.documents.parity import (
    CpuClasses,
    CpuClassRun,
    CpuParityRow,
    ParityData,
    ParityDocument,
    ParityOutput,
    ParityReference,
    ParityRow,
)
from toolkit.run.documents.schemas import DOCUMENTS, json_schema, kind_for, stale_schemas, write_schemas
from toolkit.run.documents.source import DatasetDocument, ModelDocument
from toolkit.run.documents.train import TrainData, TrainDocument
from toolkit.run.documents.verify import (
    DesktopSummary,
    Emulation,
    VerifiedBundle,
    VerifyDocument,
    VerifyGolden,
    VerifyRow,
)

__all__ = [
    "DOCUMENTS",
    "SCHEMA_VERSION",
    "ArtifactEntry",
    "BenchDocument",
    "BenchMethod",
    "BenchOptions",
    "BenchRow",
    "BundleArtifact",
    "BundleDocument",
    "BundleFile",
    "BundleGolden",
    "BundleOutput",
    "BundleSource",
    "Calibration",
    "Cause",
    "CpuClassRun",
    "CpuClasses",
    "CpuInfo",
    "CpuParityRow",
    "DatasetDocument",
    "DesktopSummary",
    "DiagnoseDocument",
    "DiagnosedArtifact",
    "Document",
    "DocumentError",
    "Emulation",
    "Environment",
    "Gallery",
    "GateCpu",
    "GateDocument",
    "GateLimits",
    "GateRegression",
    "GoldenTensor",
    "LayerRow",
    "MachineTolerance",
    "ManifestDocument",
    "McuBoardFit",
    "McuDocument",
    "McuEmulated",
    "McuFirmwareSize",
    "McuOutputParity",
    "McuParity",
    "McuResult",
    "MixedDocument",
    "MixedFormat",
    "MixedLayer",
    "MixedPoint",
    "ModelDocument",
    "OutputKindError",
    "ParityData",
    "ParityDocument",
    "ParityOutput",
    "ParityReference",
    "ParityRow",
    "Part",
    "QuantizationRecipe",
    "RemoteInfo",
    "RunOptions",
    "RunnerOptions",
    "SkippedArtifact",
    "SpeedRecord",
    "StoredModelSpec",
    "TrainData",
    "TrainDocument",
    "TrainOptions",
    "TrainingSummary",
    "VerifiedBundle",
    "VerifyDocument",
    "VerifyGolden",
    "VerifyRow",
    "dump_document",
    "json_schema",
    "kind_for",
    "load_document",
    "parse_document",
    "stale_schemas",
    "unknown_fields",
    "write_document",
    "write_schemas",
]
