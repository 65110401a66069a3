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
    """One regression, or one inconclusive latency change (`benchmarks.gate.Regression` and its `describe()`)."""

    config: str = Field(description="Artifact, or artifact b<batch>×<threads>t [variant].")
    metric: str
    baseline: float
    current: float
    limit: str
    message: str
    baseline_ci: list[float] | None = Field(
        default=None,
        description="Latency: the baseline's 95 % interval of the metric [low, high], when both rows have one.",
    )
    current_ci: list[float] | None = Field(default=None, description="Latency: the current row's interval [low, high].")
    inconclusive: bool = Field(
        default=False,
        description="True: the point value passed the limit but the intervals do not confirm it (current low end "
        "not above the baseline's high end × (1 + limit)); listed, not failing.",
    )


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
    passed: bool = Field(description="No regression (inconclusive changes do not fail the gate).")
    regressions: list[GateRegression]
    inconclusive: list[GateRegression] = Field(
        default_factory=list,
        description="Latency changes past the limit by their point values that the 95 % intervals do not confirm "
        "(absent in older files).",
    )
