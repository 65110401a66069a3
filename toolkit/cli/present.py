"""What the device commands print: the one verify table, bundles, predictions, host and emulation notes.

`print_verify` is the only verify presenter: `edgekit verify`, `verify --emulate` and `verify --remote`
all print a verify.json through it, so the three tables cannot drift apart. Device code (inputs, bundles,
remote, emulate) never prints: it reports progress through plain callbacks, whose defaults come from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from toolkit.cli.console import err, out, rich_table

if TYPE_CHECKING:
    from toolkit.remote.hosts import HostResult

VERIFY_HEADER = ["artifact", "backend", "max |Δp|", "allowed", "accuracy", "agreement", "seconds", "result"]
X86_MACHINES = ("x86_64", "AMD64", "i386", "i686")


def tolerance_text(tolerance: dict[str, Any]) -> str:
    """A tolerance as a table cell: `1e-05`, or `1 step 0.0039` for a quantization step."""
    if tolerance.get("kind") == "index_agreement":
        return f"agree ≥ {float(tolerance.get('min_agreement') or 1.0):.4g}"
    if tolerance.get("kind") == "quantization_step":
        return f"1 step {float(tolerance['max_abs']):.2g}"
    return f"{float(tolerance['max_abs']):.3g}"


def _verify_title(report: dict[str, Any], bundle: Path) -> str:
    images = report["golden"]["images"]
    emu = report.get("emulation")
    if emu:
        return f"Verify {bundle} as {emu['board']} under QEMU ({emu['qemu_cpu']}; {images} golden images)"
    remote = report.get("remote") or {}
    host = remote.get("host")
    if remote.get("place"):
        host = f"place {remote['place']} ({host})"
    elif remote.get("board"):
        host = f"{remote['board']} ({host})"
    where = f" on {host}" if host else ""
    return f"Verify {bundle}{where} ({images} golden images)"


def _diff_header(report: dict[str, Any]) -> str:
    """`max |Δp| vs x86` (`max |Δ|` for raw logits or values): the machine whose outputs the bundle carries."""
    machine = ((report.get("bundle") or {}).get("desktop") or {}).get("machine")
    desktop = "x86" if machine in X86_MACHINES else machine or "desktop"
    raw = any(r.get("output_kind") not in (None, "probabilities") for r in report["results"])
    return f"max |Δ| vs {desktop}" if raw else f"max |Δp| vs {desktop}"


def _agreement_cell(row: dict[str, Any]) -> str:
    """Top-1 agreement; for a regression model (no classes) the max error relative to the outputs."""
    if row.get("agreement") is not None:
        return f"{row['agreement']:.4f}"
    rel = row.get("max_rel_error")
    return "-" if rel is None else f"rel {rel:.1e}"


def print_verify(report: dict[str, Any], bundle: Path, target: Path) -> bool:
    """Print a verify report: the table, skips, errors, where it was written; on a mismatch a note, and False.

    Args:
        report: verify.json's content (local, emulated: with `emulation`, or fetched: with `remote`).
        bundle: the bundle as the user named it (for the title).
        target: where verify.json was written.
    """
    several = any(r.get("output") for r in report["results"])
    rows = []
    for r in report["results"]:
        name = [r["artifact"], r.get("output") or ""] if several else [r["artifact"]]
        if r["status"] == "error":
            rows.append([*name, r.get("backend") or r.get("runtime") or "", *["-"] * 5, "error"])
            continue
        rows.append(
            [
                *name,
                r.get("backend") or "",
                f"{r['max_abs_diff']:.2e}",
                tolerance_text(r["tolerance"]),
                "-" if r.get("accuracy") is None else f"{100 * r['accuracy']:.2f} %",
                _agreement_cell(r),
                f"{r.get('seconds', 0):.2f}",
                r["status"],
            ]
        )
    header = [_diff_header(report) if h == "max |Δp|" else h for h in VERIFY_HEADER]
    if several:
        header.insert(1, "output")
    out.print(rich_table(_verify_title(report, bundle), header, rows))
    for r in report["results"]:
        if r.get("reference") == "builtin":
            out.print(
                f"{escape(_row_name(r))}: compared with the desktop's built-in-kernel outputs (this runtime "
                "did not run it on XNNPACK, which rounds int8 differently)",
                highlight=False,
            )
    for s in report["skipped"]:
        err.print(f"[yellow]skipped[/] {escape(s['artifact'])}: {escape(s['reason'])}", highlight=False)
    for r in report["results"]:
        if r["status"] == "error":
            err.print(f"[bold red]{escape(_row_name(r))}[/]: {escape(r['error'])}", highlight=False)
    if emu := report.get("emulation"):
        rootfs = emu["rootfs"]
        built = f"built in {rootfs['build_seconds']:.0f} s" if rootfs["state"] == "built" else rootfs["state"]
        arch = rootfs.get("arch") or "arm64"
        out.print(
            f"Emulated verify: {emu['verify_seconds']:.1f} s ({arch} root {built}: {escape(str(rootfs['path']))}; "
            f"{emu['prepare_seconds']:.1f} s to prepare)",
            highlight=False,
        )
    out.print(f"Wrote {escape(str(target))}", highlight=False)
    if not report["passed"]:
        failed = list(dict.fromkeys(r["artifact"] for r in report["results"] if not r["passed"]))
        err.print(f"[bold red]mismatch[/] for {escape(', '.join(failed))} (see {escape(str(target))})", highlight=False)
        return False
    return True


def _row_name(row: dict[str, Any]) -> str:
    """`artifact`, or `artifact/output` for a row of one output of a model with several."""
    return f"{row['artifact']}/{row['output']}" if row.get("output") else str(row["artifact"])


def _bundle_tolerance(art: dict[str, Any]) -> str:
    """An artifact's tolerance cell; with several outputs, each output's: `digit 1e-05, side 1e-05`."""
    if art.get("outputs"):
        return ", ".join(f"{o['name']} {tolerance_text(o['tolerance'])}" for o in art["outputs"])
    return tolerance_text(art["tolerance"])


def print_bundle(path: Path, doc: dict[str, Any]) -> None:
    """The bundled artifacts (precision, size, tolerance, sha256) and how to check them on the device."""
    rows = [
        [a["name"], a["precision"], f"{a['size_bytes']:,}", _bundle_tolerance(a), a["sha256"][:12]]
        for a in doc["artifacts"]
    ]
    out.print(rich_table(f"Bundle {path}", ["artifact", "precision", "bytes", "tolerance", "sha256"], rows))
    out.print(
        f"Wrote {escape(str(path))}: {len(doc['artifacts'])} artifact(s), {doc['golden']['images']} golden images, "
        f"{len(doc['files']) + 1} files.",
        highlight=False,
    )
    out.print(f"On the device: [b]edgekit verify {escape(path.name)}[/]", highlight=False)


def print_host_event(host: str, message: str) -> None:
    """Progress of a remote host (`remote.Events`), dimmed on stderr."""
    err.print(f"[dim]{escape(host)}:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_emulate_note(message: str) -> None:
    """Progress of `verify --emulate` (building the root, running verify), dimmed on stderr."""
    err.print(f"[dim]emulate:[/] {escape(message)}", highlight=False)


def summary_line(result: HostResult, what: str) -> str:
    """One plain-text line for a host: the outcome, timings and where the JSON is, or why it failed."""
    if result.status in ("error", "skipped"):
        return f"{result.host}: {result.error}"
    if result.status == "ok":
        outcome = "passed" if what == "verify" else "done"
    else:
        outcome = "MISMATCH" if what == "verify" else "threshold exceeded (exit 3)"
    setup = f"environment {result.setup} in {result.setup_seconds or 0:.1f} s"
    if result.acquire_seconds is not None:  # a farm place: the wait for its lock too
        setup = f"place acquired in {result.acquire_seconds:.1f} s, {setup}"
    return f"{result.host}: {what} {outcome} in {result.run_seconds or 0:.1f} s ({setup}) → {result.path}"


def print_summary(results: Sequence[HostResult], what: str) -> None:
    """One line per host: successes on stdout, failures as `error: <host>: <reason>` on stderr."""
    failed = sum(r.status == "error" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    out.print(
        f"[bold]Remote {what}[/]: {len(results) - failed - skipped} of {len(results)} host(s) ran"
        + (f", {failed} failed" if failed else "")
        + (f", {skipped} skipped (busy)" if skipped else ""),
        highlight=False,
    )
    for r in results:
        if r.status == "skipped":
            err.print(f"[yellow]skipped:[/] {escape(summary_line(r, what))}", highlight=False, soft_wrap=True)
        elif r.status == "error":
            err.print(f"[bold red]error:[/] {escape(summary_line(r, what))}", highlight=False, soft_wrap=True)
        elif r.status == "threshold":
            err.print(f"[bold red]{escape(summary_line(r, what))}[/]", highlight=False, soft_wrap=True)
        else:
            out.print(escape(summary_line(r, what)), highlight=False, soft_wrap=True)
