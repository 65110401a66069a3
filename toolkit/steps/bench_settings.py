"""The benchmark settings and their two presets.

`BenchSettings` is the run document `toolkit.run.documents.BenchOptions` under its public API name
(`toolkit.BenchSettings`): one class is what `toolkit.bench` takes, what run.json stores and what
`bench --remote` sends to a board. `check()` refuses unusable settings in one line.
"""

from __future__ import annotations

from toolkit.run.documents.options import BenchOptions as BenchSettings

# A fast look, not a measurement: every configuration briefly, with the fixed method (nothing is decided on it).
QUICK_BENCH = BenchSettings(
    method="fixed", min_runs=128, min_seconds=0.2, warmup_runs=5, warmup_seconds=0.05, max_seconds=60.0, processes=1
)
FIXED_BENCH = BenchSettings(method="fixed")
DEFAULT_SETTINGS = BenchSettings()

__all__ = ["DEFAULT_SETTINGS", "FIXED_BENCH", "QUICK_BENCH", "BenchSettings"]
