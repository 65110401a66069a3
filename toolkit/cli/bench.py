"""`edgekit bench` (here or on boards over SSH) and `edgekit gate` (the regression gate)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from toolkit.cli.console import EXIT_THRESHOLD, err, out, progress_bar
from toolkit.cli.options import (
    REMOTE_DIR,
    RUNS_DIR,
    AllowOtherCpuOpt,
    AllowUnverifiedOpt,
    ArtifactsOpt,
    BaselineOpt,
    BatchOpt,
    Busy,
    BusyOpt,
    CoordinatorOpt,
    DataOpt,
    FarmOpt,
    GateMaxAccuracyDropOpt,
    GateMetric,
    GateMetricOpt,
    InventoryOpt,
    KerasFullOpt,
    MaxRegressionOpt,
    MaxRssOpt,
    MaxSizeOpt,
    MedianPrecisionOpt,
    MethodOpt,
    MinRunsOpt,
    MinSecondsOpt,
    OfflineOpt,
    OrtOptOpt,
    OvHintOpt,
    PeakOpt,
    PlaceOpt,
    ProcessesOpt,
    QuickOpt,
    RemoteDirOpt,
    RemoteOpt,
    RunDirArg,
    RunsDirOpt,
    SshConfigOpt,
    ThreadsOpt,
    WaitTimeoutOpt,
    WarmupOpt,
    XnnpackOpt,
    bench_settings,
    resolve_run,
    wants_boards,
    wants_farm,
)
from toolkit.cli.show import _load_data, print_bench

if TYPE_CHECKING:
    from collections.abc import Sequence

    from benchmarks.gate import Limits
    from toolkit.remote.boards import Board
    from toolkit.steps.bench_settings import BenchSettings


def bench(
    run_dir: RunDirArg = None,
    runs_dir: RunsDirOpt = RUNS_DIR,
    artifact: ArtifactsOpt = None,
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
    batch: BatchOpt = None,
    threads: ThreadsOpt = None,
    xnnpack: XnnpackOpt = None,
    ort_opt: OrtOptOpt = None,
    ov_hint: OvHintOpt = None,
    min_runs: MinRunsOpt = None,
    min_seconds: MinSecondsOpt = None,
    warmup_runs: WarmupOpt = None,
    quick: QuickOpt = False,
    peak: PeakOpt = True,
    method: MethodOpt = None,
    median_precision: MedianPrecisionOpt = None,
    keras_full: KerasFullOpt = False,
    processes: ProcessesOpt = None,
    remote: RemoteOpt = None,
    place: PlaceOpt = None,
    farm: FarmOpt = None,
    inventory: InventoryOpt = None,
    coordinator: CoordinatorOpt = None,
    busy: BusyOpt = Busy.wait,
    wait_timeout: WaitTimeoutOpt = 600.0,
    ssh_config: SshConfigOpt = None,
    remote_dir: RemoteDirOpt = REMOTE_DIR,
    offline: OfflineOpt = False,
    baseline: BaselineOpt = None,
    max_regression: MaxRegressionOpt = "10%",
    max_accuracy_drop: GateMaxAccuracyDropOpt = 0.5,
    max_size_increase: MaxSizeOpt = "10%",
    max_rss_increase: MaxRssOpt = "25%",
    gate_metric: GateMetricOpt = GateMetric.P50,
    allow_other_cpu: AllowOtherCpuOpt = False,
) -> None:
    """Measure latency of every artifact on its runtime, one fresh process per configuration; writes bench.json.

    With [b]--remote[/], each board measures the same configurations; its results land in
    RUN_DIR/remote/<host>/bench.json ([b]--data[/] is not used there: a board times the run's own inputs).
    [b]--place[/]/[b]--farm[/] take labgrid places instead (each acquired for its measurement, never two on one
    board; results in RUN_DIR/remote/<place>/), [b]--inventory[/] a TOML file of SSH boards.
    Examples: [b]edgekit bench runs/latest -a tflite-int8 -b 1 -t 1[/]
    or, as a CI gate: [b]edgekit bench --baseline baseline/bench.json --max-regression 10%[/] (exit 3 on a regression)
    """
    import toolkit
    from toolkit.run import layout as A

    run = resolve_run(run_dir, runs_dir)
    gate = _gate_setup(
        baseline, max_regression, max_accuracy_drop, max_size_increase, max_rss_increase, gate_metric, allow_other_cpu
    )
    on_boards = wants_boards(remote, place, farm, inventory) or wants_farm(coordinator)
    if gate is not None and not on_boards:
        _check_cpu_here(gate)  # this machine's class against the baseline's, before minutes of measuring
    settings = bench_settings(
        batch,
        threads,
        xnnpack,
        ort_opt,
        min_runs,
        min_seconds,
        warmup_runs,
        quick,
        peak,
        method=method,
        precision=median_precision,
        keras_full=keras_full,
        processes=processes,
        ov_hint=ov_hint,
    )
    if on_boards:
        from toolkit.remote.boards import chosen_boards

        with chosen_boards(
            remote or (), place or (), farm or (), inventory, coordinator, busy.value, wait_timeout
        ) as boards:
            _bench_remote(run, boards, settings, artifact, ssh_config, remote_dir, gate, offline)
        return
    dataset = _load_data(data, allow_unverified, run)
    with progress_bar() as progress:
        report = toolkit.bench(run, settings=settings, artifacts=artifact, data=dataset, progress=progress)
    print_bench(report)
    out.print(f"Wrote {escape(str(run / A.BENCH_JSON))}", highlight=False)
    if gate is not None:
        _run_gate(run / A.BENCH_JSON, *gate)


def _bench_remote(
    run: Path,
    hosts: Sequence[str | Board],
    settings: BenchSettings,
    artifacts: list[str] | None,
    ssh_config: Path | None,
    remote_dir: str,
    gate: Gate | None,
    offline: bool = False,
) -> None:
    """`edgekit bench --remote`: the same `BenchSettings` on each board, fetched into RUN_DIR/remote/<host>/."""
    import toolkit
    from toolkit.cli.present import print_host_event, print_summary
    from toolkit.remote.hosts import RemoteFailed
    from toolkit.remote.ssh import SshSettings

    ssh = SshSettings.from_env(config=ssh_config, remote_dir=remote_dir)
    failed: RemoteFailed | None = None
    try:
        docs = toolkit.bench_remote(
            run,
            hosts,
            settings=settings,
            artifacts=artifacts,
            ssh=ssh,
            events=print_host_event,
            on_results=lambda results: print_summary(results, "bench"),
            offline=offline,
        )
    except RemoteFailed as exc:
        docs, failed = exc.documents, exc
    for host, doc in docs.items():
        path = toolkit.remote_bench_path(run, host)
        out.print(f"[bold]{escape(host)}[/]: {escape(str(path))}", highlight=False)
        print_bench(doc)
        if gate is not None:
            _run_gate(path, *gate)
    md, html = toolkit.report(run)
    out.print(f"Updated {escape(str(md))} and {escape(str(html))} with the boards' results", highlight=False)
    if failed is not None:
        raise failed


Gate = tuple[Path, "Limits", bool]  # baseline bench.json, limits, --allow-other-cpu


def _gate_setup(
    baseline: Path | None,
    latency: str,
    accuracy: float,
    size: str,
    rss: str,
    metric: GateMetric,
    allow_other_cpu: bool = False,
) -> Gate | None:
    """Check the baseline and limits before benchmarking, so a bad option fails in a second, not after minutes."""
    if baseline is None:
        return None
    from benchmarks.gate import Limits, parse_limit
    from toolkit.steps.gate import bench_path, load_bench

    limits = Limits(
        max_latency_regression=parse_limit(latency, option="--max-regression") / 100,
        max_accuracy_drop_pt=accuracy,
        max_size_increase=parse_limit(size, option="--max-size-increase") / 100,
        max_rss_increase=parse_limit(rss, option="--max-rss-increase") / 100,
        metric=f"{metric.value}_ms",
    )
    path = bench_path(baseline, "--baseline")
    load_bench(path)
    return path, limits, allow_other_cpu


def _check_cpu_here(gate: Gate) -> None:
    from benchmarks.cpu import detect_cpu
    from toolkit.steps.gate import check_same_cpu, isa_class, load_bench

    baseline, _, allowed = gate
    check_same_cpu(detect_cpu().isa_class, isa_class(load_bench(baseline)), allow_other_cpu=allowed)


def _run_gate(current: Path, baseline: Path, limits: Limits, allow_other_cpu: bool = False) -> None:
    """Gate `current` (a bench.json) against the baseline through the API; print each regression and each
    inconclusive latency change, exit 3 on any regression."""
    import toolkit

    doc = toolkit.gate(current, baseline, limits=limits, allow_other_cpu=allow_other_cpu)
    # Past the limit by the point values, not by the intervals: listed so a reader can re-measure, not failing.
    for r in doc.inconclusive:
        err.print(f"[yellow]inconclusive[/] {escape(r.message)}", highlight=False)
    unsure = f" ({len(doc.inconclusive)} inconclusive, listed above)" if doc.inconclusive else ""
    if doc.passed:
        out.print(f"[bold green]gate passed[/]: no regression against {escape(str(baseline))}{unsure}", highlight=False)
        return
    for r in doc.regressions:
        err.print(f"[bold red]regression[/] {escape(r.message)}", highlight=False)
    err.print(f"[bold red]gate failed[/]: {len(doc.regressions)} regression(s) against {escape(str(baseline))}{unsure}")
    raise typer.Exit(EXIT_THRESHOLD)


def gate(
    current: Annotated[Path, typer.Argument(help="The bench.json (or run directory) to check.", show_default=False)],
    baseline: BaselineOpt = None,
    max_regression: MaxRegressionOpt = "10%",
    max_accuracy_drop: GateMaxAccuracyDropOpt = 0.5,
    max_size_increase: MaxSizeOpt = "10%",
    max_rss_increase: MaxRssOpt = "25%",
    gate_metric: GateMetricOpt = GateMetric.P50,
    allow_other_cpu: AllowOtherCpuOpt = False,
) -> None:
    """Compare an existing bench.json with a baseline without measuring again; exit 3 on a regression.

    Benches measured on different instruction-set classes (bench.json's environment.cpu) are refused (exit 1)
    unless [b]--allow-other-cpu[/].
    Example: [b]edgekit gate runs/latest --baseline main/bench.json --max-regression 10%[/]
    """
    from toolkit.errors import ToolkitError
    from toolkit.steps.gate import bench_path

    if baseline is None:
        raise ToolkitError("gate needs --baseline: the bench.json to compare with.")
    setup = _gate_setup(
        baseline, max_regression, max_accuracy_drop, max_size_increase, max_rss_increase, gate_metric, allow_other_cpu
    )
    assert setup is not None
    _run_gate(bench_path(current, "bench"), *setup)
