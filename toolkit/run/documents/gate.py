"""gate.json: a bench.json compared with a baseline (`edgekit gate`, `edgekit bench --baseline`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from toolkit.run.documents.base import Document, Part


class GateLimits(Part):
    """Allowed worsening (`benchmarks.gate.Limits`); None switches a check off."""

    max_latency_regression: float | None = Field(description="Fraction: 0.1 = 10 % slower.")
    max_accuracy_drop_pt: float | None = Field(description="Points: 0.5 = 0.5 pt.")
    max_size_increase: float | None = Field(description="Fraction.")
    max_rss_increase: float | None = Field(description="Fraction.")
    metric: str = Field(description="The latency field compared, e.g. p50_ms.")


class GateRegression(Part):
    """One regression (`benchmarks.gate.Regression` and its `describe()`)."""

    config: str = Field(description="Artifact, or artifact b<batch>×<threads>t [variant].")
    metric: str
    baseline: float
    current: float
    limit: str
    message: str


class GateCpu(Part):
    """The instruction-set classes compared (None: the bench.json does not say)."""

    current: str | None
    baseline: str | None
    other_cpu_allowed: bool = Field(description="True when --allow-other-cpu let different classes be compared.")


class GateDocument(Document):
    """gate.json: the limits, the baseline and every regression found."""

    FILE: ClassVar[str] = "gate.json"
    FIX: ClassVar[str] = "re-run `edgekit gate`"

    cpu: GateCpu | None = Field(default=None, description="The CPU classes of the two benches (absent in older files).")
    baseline: str = Field(description="Path of the baseline bench.json.")
    limits: GateLimits
    passed: bool
    regressions: list[GateRegression]
