"""Guard the adaptive benchmark: run it and the fixed method side by side and save what they decide.

    python examples/compare_bench_methods.py OUT_DIR --reference RUN_DIR [--user-models] [--control]
    python examples/compare_bench_methods.py OUT_DIR --add-control all   # after a run without --control

For the reference run (a finished `edgekit pipeline` run directory) and, with `--user-models`, for each test
model of the own-model work (tests/user_models.py: RGB CNN, MLP, logits CNN, regression MLP, folder CNN):

- the user models first go through `edgekit pipeline --model … --data …` at default settings (the adaptive
  method), timed as a whole process: the wait for a recommendation;
- then `edgekit bench RUN` (adaptive) and `edgekit bench RUN --method fixed` run on two copies of the run,
  one after the other, each timed as a whole process;
- with `--control` (or afterwards, `--add-control CASE|all`), the fixed method runs a second time on each case,
  to show how far two fixed runs of the same configuration differ (process-to-process variation the within-run
  intervals do not cover).

Writes OUT_DIR/summary.json and OUT_DIR/summary.md: per case, the wall time of each method, the
recommendation of each (and whether they agree), and per row whether the adaptive p50 lies inside the fixed
method's 95 % interval of p50 (for the leaders of the recommendation, the span of their fresh processes), with
the relative difference and how many processes each row had; the rows outside are listed, each with why as far
as the control tells: the second fixed run lands as far from the first (or farther); or the whole adaptive run
moved (the machine's speed between the runs: the median row's Δ) and beside that the row is within the fixed runs'
spread; or it is beyond that spread (to look into).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from toolkit.reports.rules import recommend
from toolkit.run.documents import BenchDocument, ManifestDocument, ParityDocument, load_document


@dataclass
class RowCheck:
    config: str
    adaptive_p50_ms: float
    adaptive_stop: str | None
    fixed_p50_ms: float
    fixed_ci_ms: tuple[float, float] | None
    inside: bool
    rel_diff: float
    processes: tuple[int, int] = (1, 1)  # fresh processes behind each row (adaptive, fixed): leaders have several


@dataclass
class Case:
    name: str
    pipeline_s: float | None = None
    adaptive_s: float = 0.0
    fixed_s: float = 0.0
    adaptive_pick: str | None = None
    fixed_pick: str | None = None
    adaptive_ties: list[str] = field(default_factory=list)
    fixed_ties: list[str] = field(default_factory=list)
    rows: list[RowCheck] = field(default_factory=list)
    control_rows: list[RowCheck] = field(default_factory=list)
    control_pick: str | None = None  # the second fixed run's pick: does the fixed method agree with itself?

    @property
    def same_pick(self) -> bool:
        return self.adaptive_pick == self.fixed_pick

    @property
    def same_artifact(self) -> bool:
        """The same artifact and runtime, whatever the thread count (the pick's part a deployment ships)."""
        return _artifact(self.adaptive_pick) == _artifact(self.fixed_pick)

    @property
    def fixed_agrees(self) -> bool:
        """The fixed method's own figures back the adaptive pick: the same artifact, or one the fixed run's
        recommendation calls a tie with its pick (within the tie margin, or intervals overlapping). Where candidates
        lie within a few percent, the fixed method's pick changes from run to run (three runs of the RGB CNN's gave
        three), so a tie is all one run can say."""
        return self.same_artifact or _artifact(self.adaptive_pick) in self.fixed_ties


def _artifact(pick: str | None) -> str | None:
    return None if pick is None else pick.rsplit(" b", 1)[0]


def edgekit(*args: str) -> float:
    """Run `edgekit ARGS` as a whole process; its wall time in seconds (a failure stops the script)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "toolkit.cli", *args], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 3):  # 3: parity failed somewhere, the run is still complete
        raise SystemExit(f"edgekit {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return seconds


def key(row: object) -> tuple[str, int, int | None]:
    return (row.config_label(), row.batch_size, row.threads)  # type: ignore[attr-defined]


def pick(run: Path) -> tuple[str | None, list[str]]:
    parity = load_document(run / "parity.json", ParityDocument)
    bench = load_document(run / "bench.json", BenchDocument)
    manifest = load_document(run / "manifest.json", ManifestDocument)
    rec = recommend(parity, bench, manifest)
    if rec is None:
        return None, []
    return f"{rec.configuration} b{rec.batch_size}×{rec.threads}t", list(rec.tied_with)


def compare_rows(candidate: Path, fixed: Path) -> list[RowCheck]:
    """Each row of `candidate`'s bench.json against the same configuration in `fixed`'s."""
    cand = {key(r): r for r in load_document(candidate / "bench.json", BenchDocument).results}
    base = {key(r): r for r in load_document(fixed / "bench.json", BenchDocument).results}
    checks = []
    for k, r in cand.items():
        f = base.get(k)
        if f is None:
            continue
        ci = (f.p50_ci_low_ms, f.p50_ci_high_ms) if f.p50_ci_low_ms is not None and f.p50_ci_high_ms else None
        inside = ci is not None and ci[0] <= r.p50_ms <= ci[1]
        label = f"{k[0]} b{k[1]}×{k[2]}t"
        processes = (len(r.process_p50_ms or [0]), len(f.process_p50_ms or [0]))
        checks.append(RowCheck(label, r.p50_ms, r.stop, f.p50_ms, ci, inside, r.p50_ms / f.p50_ms - 1, processes))
    return checks


def bench_copy(run: Path, copy: Path, *args: str) -> float:
    """`edgekit bench` on a fresh copy of `run` at `copy` (with `args`, e.g. the method); its wall time in seconds."""
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy, symlinks=True)
    return edgekit("bench", str(copy), *args)


def measure(case: Case, run: Path, out: Path, control: bool) -> None:
    case.adaptive_s = bench_copy(run, out / case.name / "adaptive")
    case.fixed_s = bench_copy(run, out / case.name / "fixed", "--method", "fixed")
    case.fixed_pick, case.fixed_ties = pick(out / case.name / "fixed")
    judge_adaptive(case, out)
    if control:
        add_control(case, run, out)


def judge_adaptive(case: Case, out: Path) -> None:
    """The adaptive run's pick, and each of its rows against the first fixed run."""
    case.adaptive_pick, case.adaptive_ties = pick(out / case.name / "adaptive")
    case.rows = compare_rows(out / case.name / "adaptive", out / case.name / "fixed")


def add_control(case: Case, run: Path, out: Path) -> None:
    """The fixed method a second time on a fresh copy of `run`, compared with the first fixed run: how far the
    fixed method lands from its own interval, the yardstick for the adaptive rows that land outside it."""
    copy = out / case.name / "fixed2"
    bench_copy(run, copy, "--method", "fixed")
    case.control_rows = compare_rows(copy, out / case.name / "fixed")
    case.control_pick = pick(copy)[0]


def rerun_adaptive(case: Case, run: Path, out: Path) -> None:
    """The adaptive method again on a fresh copy of `run`, against the fixed run kept from before (after a change
    to the adaptive method: the fixed method's runs do not change with it)."""
    case.adaptive_s = bench_copy(run, out / case.name / "adaptive")
    judge_adaptive(case, out)


def why_outside(case: Case, row: RowCheck) -> tuple[str, bool]:
    """Why an adaptive p50 lies outside the fixed run's interval, as far as the control can say, and whether that
    explains it: a second fixed run of the same case landing as far or farther from the first (the spread between
    fresh processes, which one process's interval does not cover), or the whole run having moved; ("", True) for a
    row inside."""
    if row.inside:
        return "", True
    if not case.control_rows:
        return "no control run", False
    worst = max(abs(r.rel_diff) for r in case.control_rows)
    same = next((r for r in case.control_rows if r.config == row.config), None)
    if same is not None and not same.inside and abs(row.rel_diff) <= abs(same.rel_diff):
        return f"fixed run 2 is farther ({100 * same.rel_diff:+.1f} %)", True
    if abs(row.rel_diff) <= worst:
        return f"within the fixed runs' spread (≤ {100 * worst:.1f} %)", True
    # The machine's speed between the two runs: every configuration moved alike (the median row's Δ).
    shift = run_shift(case)
    if abs((1 + row.rel_diff) / (1 + shift) - 1) <= worst:
        return f"the whole run moved {100 * shift:+.1f} % (median Δ); beside that, within the fixed runs' spread", True
    return f"BEYOND the fixed runs' spread ({100 * worst:.1f} %)", False


def run_shift(case: Case) -> float:
    """How far the adaptive run as a whole landed from the fixed run: the median row's relative difference."""
    diffs = sorted(r.rel_diff for r in case.rows)
    return diffs[len(diffs) // 2] if diffs else 0.0


def repeat(out: Path, name: str, times: int) -> str:
    """Bench case `name`'s pipeline run again `times` times with each method, alternated: how often each method's
    pick agrees with its own other runs and with the other method's (a markdown section)."""
    source = (out / "pipelines" / name / "latest").resolve() if name != "reference" else None
    if source is None or not source.is_dir():
        source = (out / name / "fixed").resolve()  # the reference: a copy of its run, re-benched in place
    picks: dict[str, list[str]] = {"adaptive": [], "fixed": []}
    seconds: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    for i in range(1, times + 1):
        for method in ("fixed", "adaptive"):
            copy = out / name / f"{method}-repeat{i}"
            seconds[method].append(bench_copy(source, copy, *(("--method", "fixed") if method == "fixed" else ())))
            chosen, ties = pick(copy)
            picks[method].append(f"{chosen} (tied with {', '.join(ties) or 'none'})")
    lines = [
        f"## {name}: {times} more runs of each method",
        "",
        "| run | fixed pick | adaptive pick |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {i + 1} | {f} | {a} |" for i, (f, a) in enumerate(zip(picks["fixed"], picks["adaptive"], strict=True))
    ]
    lines += ["", f"bench wall s: fixed {seconds['fixed']}, adaptive {seconds['adaptive']}", ""]
    return "\n".join(lines)


def _source(out: Path, name: str) -> Path:
    """The run a case was benched from: a user model's pipeline run, or for the reference a copy of it (its first
    fixed run's folder: `edgekit bench` rewrites bench.json, and nothing else the next bench reads)."""
    source = out / "pipelines" / name / "latest"
    return source.resolve() if source.is_dir() else out / name / "fixed"


def user_model_runs(out: Path) -> dict[str, tuple[Path, float]]:
    """Build the test user models, run each through the pipeline at default settings; (run, wall s) by name."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from measure_user_models import build  # the same five models and data as the own-model measurements

    files = build(out / "inputs")
    runs = {}
    for name, (model, data_path) in files.items():
        runs_dir = out / "pipelines" / name
        seconds = edgekit("pipeline", "--model", str(model), "--data", str(data_path), "--runs-dir", str(runs_dir))
        runs[name] = ((runs_dir / "latest").resolve(), seconds)
    return runs


def _case(data: dict[str, Any]) -> Case:
    rows = {
        k: [
            RowCheck(
                **{
                    **r,
                    "fixed_ci_ms": tuple(r["fixed_ci_ms"]) if r["fixed_ci_ms"] else None,
                    "processes": tuple(r.get("processes", (1, 1))),
                }
            )
            for r in data[k]
        ]
        for k in ("rows", "control_rows")
    }
    return Case(**{**data, **rows})


def markdown(cases: list[Case]) -> str:
    lines = [
        "# Adaptive and fixed benchmark methods, side by side",
        "",
        "| case | pipeline s (adaptive) | bench s adaptive | bench s fixed | adaptive pick | fixed pick | "
        "same artifact | or a tie by the fixed run | same threads | adaptive p50 inside fixed CI | "
        "outside, but no farther than a 2nd fixed run | median Δ | 2nd fixed run's pick |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        inside = sum(r.inside for r in c.rows)
        explained = sum(1 for r in c.rows if not r.inside and why_outside(c, r)[1])
        outside = len(c.rows) - inside
        pipeline = f"{c.pipeline_s:.1f}" if c.pipeline_s is not None else "–"
        lines.append(
            f"| {c.name} | {pipeline} | {c.adaptive_s:.1f} | {c.fixed_s:.1f} | {c.adaptive_pick} | {c.fixed_pick} | "
            f"{'yes' if c.same_artifact else 'no'} | {'yes' if c.fixed_agrees else 'NO'} | "
            f"{'yes' if c.same_pick else 'no'} | {inside}/{len(c.rows)} | "
            f"{f'{explained}/{outside}' if c.control_rows else 'no control'} | {100 * run_shift(c):+.1f} % | "
            f"{c.control_pick or '–'} |"
        )
    for c in cases:
        lines += ["", f"## {c.name}", ""]
        if c.adaptive_ties or c.fixed_ties:
            lines.append(f"Ties: adaptive {c.adaptive_ties or '–'}; fixed {c.fixed_ties or '–'}.")
            lines.append("")
        lines += [
            "| configuration | adaptive p50 ms | stop | fixed p50 ms | fixed 95 % CI | processes | inside | Δ | "
            "fixed run 2 Δ | why outside |",
            "| --- | ---: | --- | ---: | --- | ---: | --- | ---: | ---: | --- |",
        ]
        control = {r.config: r for r in c.control_rows}
        for r in c.rows:
            ci = f"{r.fixed_ci_ms[0]:.4f}–{r.fixed_ci_ms[1]:.4f}" if r.fixed_ci_ms else "–"
            second = control.get(r.config)
            lines.append(
                f"| {r.config} | {r.adaptive_p50_ms:.4f} | {r.adaptive_stop} | {r.fixed_p50_ms:.4f} | {ci} | "
                f"{r.processes[0]} / {r.processes[1]} | {'yes' if r.inside else 'no'} | {100 * r.rel_diff:+.1f} % | "
                f"{'–' if second is None else f'{100 * second.rel_diff:+.1f} %'} | {why_outside(c, r)[0]} |"
            )
        if c.control_rows:
            inside = sum(r.inside for r in c.control_rows)
            spread = sorted(abs(r.rel_diff) for r in c.control_rows)
            lines += [
                "",
                f"Control (a second fixed run against the first): {inside}/{len(c.control_rows)} p50s inside the "
                f"first run's interval; |Δ| median {100 * spread[len(spread) // 2]:.1f} %, "
                f"max {100 * spread[-1]:.1f} %.",
            ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--reference", type=Path, help="a finished reference pipeline run directory")
    parser.add_argument("--user-models", action="store_true", help="also the five test user models")
    parser.add_argument("--control", action="store_true", help="run the fixed method twice on every case")
    parser.add_argument(
        "--add-control",
        metavar="CASE",
        action="append",
        help="after a guard run in OUT: run CASE's fixed method a second time and add it as its control "
        "(repeatable; 'all' for every case without one)",
    )
    parser.add_argument("--render", action="store_true", help="only write summary.md again from summary.json")
    parser.add_argument(
        "--repick",
        action="store_true",
        help="with --render: decide the picks again from the saved runs (after a change of the tie rule)",
    )
    parser.add_argument(
        "--repeat",
        metavar="CASE",
        help="after a guard run in OUT: bench CASE's run again with each method (--times), alternated, and append "
        "the picks to OUT/repeat.md",
    )
    parser.add_argument(
        "--rerun-adaptive",
        action="store_true",
        help="after a guard run in OUT: bench every case again with the adaptive method, against the kept fixed runs",
    )
    parser.add_argument("--times", type=int, default=2, help="with --repeat: runs of each method (default 2)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.repeat:
        section = repeat(args.out, args.repeat, args.times)
        with (args.out / "repeat.md").open("a") as fh:
            fh.write(section + "\n")
        print(section)
        return 0
    added = args.add_control or []
    if args.render or added or args.rerun_adaptive:  # work on the cases of an earlier guard run in OUT
        cases = [_case(c) for c in json.loads((args.out / "summary.json").read_text())]
        for c in cases:
            if args.rerun_adaptive:
                rerun_adaptive(c, _source(args.out, c.name), args.out)
            if c.name in added or ("all" in added and not c.control_rows):
                add_control(c, _source(args.out, c.name), args.out)
            if args.render and args.repick:
                c.adaptive_pick, c.adaptive_ties = pick(args.out / c.name / "adaptive")
                c.fixed_pick, c.fixed_ties = pick(args.out / c.name / "fixed")
                if (args.out / c.name / "fixed2" / "bench.json").is_file():
                    c.control_pick = pick(args.out / c.name / "fixed2")[0]
        return save(args.out, cases, summary=not args.render or args.repick)
    cases = []
    if args.reference:
        case = Case("reference")
        measure(case, args.reference.resolve(), args.out, args.control)
        cases.append(case)
    if args.user_models:
        for name, (run, seconds) in user_model_runs(args.out).items():
            case = Case(name, pipeline_s=seconds)
            measure(case, run, args.out, control=args.control)
            cases.append(case)
    return save(args.out, cases)


def save(out: Path, cases: list[Case], *, summary: bool = True) -> int:
    """Write OUT/summary.json (unless only re-rendering) and OUT/summary.md, and print the markdown."""
    if summary:
        (out / "summary.json").write_text(json.dumps([asdict(c) for c in cases], indent=2) + "\n")
    text = markdown(cases)
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
