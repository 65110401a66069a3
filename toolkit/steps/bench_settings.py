"""What a benchmark measures and how long (`BenchSettings`); light to import (the CLI and API build it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from toolkit.errors import ToolkitError


@dataclass(frozen=True)
class BenchSettings:
    """What to measure and how long.

    Method (close to MLPerf single-stream): warm-up by count and time, then timed runs until both
    `min_runs` queries and `min_seconds` are reached (`max_seconds` caps a slow configuration).
    Sweeps: batch sizes × thread counts, TFLite with XNNPACK on and/or off, ONNX Runtime graph
    optimisation levels.
    """

    batch_sizes: tuple[int, ...] = (1, 32)
    threads: tuple[int, ...] | None = None  # None: 1 and all available cores
    xnnpack: tuple[bool, ...] = (True,)
    ort_optimization: tuple[str, ...] = ("all",)
    warmup_runs: int = 10
    warmup_seconds: float = 0.2
    min_runs: int = 1024
    min_seconds: float = 2.0
    max_seconds: float = 60.0
    measure_peak: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchSettings:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)

    def validate(self) -> None:
        from runtimes.ort_runner import GRAPH_OPT_LEVELS as levels

        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ToolkitError(f"--batch values must be 1 or more, got {list(self.batch_sizes)}.")
        if self.threads is not None and any(t < 1 for t in self.threads):
            raise ToolkitError(f"--threads values must be 1 or more, got {list(self.threads)}.")
        if self.min_runs < 1 or self.warmup_runs < 0 or self.min_seconds < 0 or self.warmup_seconds < 0:
            raise ToolkitError("--min-runs must be ≥ 1; --warmup-runs, --warmup-seconds and --min-seconds ≥ 0.")
        if not self.xnnpack:
            raise ToolkitError("--xnnpack needs at least one of on, off.")
        bad = [level for level in self.ort_optimization if level not in levels]
        if bad or not self.ort_optimization:
            raise ToolkitError(f"--ort-opt takes {', '.join(levels)}; got {', '.join(bad) or 'nothing'}.")


QUICK_BENCH = BenchSettings(min_runs=128, min_seconds=0.2, warmup_runs=5, warmup_seconds=0.05)
DEFAULT_SETTINGS = BenchSettings()
