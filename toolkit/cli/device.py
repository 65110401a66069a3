"""On-device commands: `predict` (classify digit images), `bundle` (pack a run for a device), `verify`.

Imported at every CLI start: only typer, enum, pathlib, typing and toolkit.cli.console at the top; numpy,
Pillow and the runtimes are imported inside the commands.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from toolkit.cli.console import EXIT_THRESHOLD, err, out, progress_bar, rich_table, user_errors


class EmulatedBoard(str, Enum):
    """Boards `verify --emulate` imitates (QEMU user-mode CPU models; see toolkit/emulate.py)."""

    pi4 = "pi4"
    pi5 = "pi5"


def predict(
    model: Annotated[
        Path,
        typer.Argument(
            help="A .tflite or .onnx file, or a run directory / bundle (folder or .tar.gz) with --artifact.",
            show_default=False,
        ),
    ],
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Images: PNG, JPEG, BMP (any size; grey, RGB, RGBA, palette or 16-bit) or .npy arrays.",
            show_default=False,
        ),
    ],
    artifact: Annotated[
        str | None,
        typer.Option(
            "--artifact",
            "-a",
            help="Artifact of a run directory or bundle, e.g. tflite-int8 (default: tflite-fp32 if present).",
        ),
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=10, help="Show the K most likely digits per image.")
    ] = 1,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON to stdout (and nothing else).")
    ] = False,
    preprocess: Annotated[
        bool,
        typer.Option(
            "--preprocess/--no-preprocess",
            help="Make images look like MNIST: invert dark-on-light, crop to the digit, fit 20×20, centre by mass. "
            "--no-preprocess only converts to grey and resizes to 28×28.",
        ),
    ] = True,
    save_inputs: Annotated[
        Path | None,
        typer.Option(
            "--save-inputs",
            help="Also write each 28×28 model input as a PNG into this folder (to see what the model saw).",
            file_okay=False,
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", "-t", min=1, help="Runtime threads (default: the runtime's).")
    ] = None,
) -> None:
    """Classify digit images with a TFLite or ONNX model, preprocessing them like MNIST.

    Photos (dark ink on light paper, any size, digit anywhere) are inverted, cropped, scaled and centred
    the way MNIST's digits were. A run directory or bundle is checked against its sha256 first.
    Example: [b]edgekit predict runs/latest/exports/model_int8.tflite digit.jpg -k 3[/]
    """
    import numpy as np

    from runtimes.registry import make_runner
    from toolkit.bundle import model_source
    from toolkit.images import prepare, save_png

    with model_source(model, artifact) as (model_path, name, note):
        prepared = [p for path in images for p in prepare(path, preprocess=preprocess)]
        if note:
            err.print(f"[dim]{escape(note)}[/]", highlight=False)
        batch = np.stack([p.pixels for p in prepared])[..., np.newaxis]
        with make_runner(model_path, num_threads=threads) as runner:
            probs = runner.infer(batch)
            backend = runner.backend()
    if save_inputs is not None:
        for i, p in enumerate(prepared):
            save_png(p.pixels, save_inputs / f"{i:04d}-{Path(p.name.replace('[', '-').rstrip(']')).stem}.png")
    results = []
    for p, row in zip(prepared, probs, strict=True):
        order = np.argsort(-row, kind="stable")[:top_k]
        results.append(
            {
                **p.to_dict(),
                "digit": int(order[0]),
                "confidence": round(float(row[order[0]]), 6),
                "top_k": [{"digit": int(d), "probability": round(float(row[d]), 6)} for d in order],
                "probabilities": [round(float(v), 6) for v in row],
            }
        )
    if json_out:
        import json

        doc = {
            "model": str(model_path),
            "artifact": name,
            "backend": backend,
            "preprocess": preprocess,
            "results": results,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    header = ["image", "digit", "confidence"]
    if top_k > 1:
        header.append(f"top {top_k}")
    if preprocess:
        header.append("inverted")
    rows = []
    for r in results:
        cells = [r["image"], str(r["digit"]), f"{100 * r['confidence']:.1f} %"]
        if top_k > 1:
            cells.append("  ".join(f"{t['digit']}: {100 * t['probability']:.1f} %" for t in r["top_k"]))
        if preprocess:
            cells.append("yes" if r["inverted"] else "no")
        rows.append(cells)
    table = rich_table(f"Predictions by {name or model_path.name}", header, rows)
    table.caption = f"{backend}; preprocessing {'on' if preprocess else 'off (--no-preprocess)'}"
    table.caption_justify = "left"
    out.print(table)


def bundle(
    run_dir: Annotated[
        Path | None, typer.Argument(help="Run directory (default: runs/latest).", show_default=False)
    ] = None,
    *,
    out_path: Annotated[
        Path,
        typer.Option("--out", "-o", help="Bundle folder, or an archive when it ends in .tar.gz.", show_default=False),
    ],
    artifact: Annotated[
        list[str] | None,
        typer.Option("--artifact", "-a", help="Artifact to include; repeat (default: every non-Keras artifact)."),
    ] = None,
    golden: Annotated[
        int, typer.Option("--golden", min=1, max=10000, help="Golden test images (the last N of the MNIST test set).")
    ] = 256,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Pack a run's artifacts with golden inputs and the desktop's outputs for a device; check with `verify`.

    Writes the artifacts, golden/inputs.npy and labels.npy, expected/<artifact>.npy, manifest.json and
    bundle.json (desktop environment, I/O specs, tolerances, sha256 of every file), atomically.
    Example: [b]edgekit bundle runs/latest --out edgekit-bundle.tar.gz[/]
    """
    from toolkit.bundle import build_bundle

    with progress_bar() as progress:
        task = progress.add_task("bundle", total=None)
        path, doc = build_bundle(
            run_dir,
            out_path,
            artifact_names=artifact,
            golden=golden,
            force=force,
            on_step=lambda msg: progress.update(task, description=msg),
        )
        progress.update(task, description="bundle: done", total=1, completed=1)
    rows = [
        [a["name"], a["precision"], f"{a['size_bytes']:,}", _tolerance_text(a["tolerance"]), a["sha256"][:12]]
        for a in doc["artifacts"]
    ]
    out.print(rich_table(f"Bundle {path}", ["artifact", "precision", "bytes", "tolerance", "sha256"], rows))
    out.print(
        f"Wrote {path}: {len(doc['artifacts'])} artifact(s), {doc['golden']['images']} golden images, "
        f"{len(doc['files']) + 1} files.",
        highlight=False,
    )
    out.print(f"On the device: [b]edgekit verify {escape(path.name)}[/]", highlight=False)


def verify(
    bundle_path: Annotated[
        Path, typer.Argument(help="Bundle folder or .tar.gz made by `edgekit bundle`.", show_default=False)
    ],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to write verify.json (default: inside the folder, or <name>.verify.json beside a .tar.gz).",
        ),
    ] = None,
    emulate: Annotated[
        EmulatedBoard | None,
        typer.Option(
            "--emulate",
            help="Verify on an emulated arm64 board instead of this machine: a cached Debian arm64 root run under "
            "QEMU user-mode with the board's CPU (pi4: cortex-a72, pi5: cortex-a76). Needs root and "
            "qemu-user-static, binfmt-support, debootstrap; the first run builds the root (~5 min). Writes "
            "<bundle>.emulate-<board>.verify.json beside the bundle unless --out is given.",
            case_sensitive=False,
        ),
    ] = None,
    remote: Annotated[
        list[str] | None,
        typer.Option(
            "--remote",
            help="Verify on this host over ssh instead (user@host or a Host from ~/.ssh/config); repeat for "
            "several hosts, checked in parallel. Installs a runtime-only edgekit there once (reused later). "
            "With --remote, --out is the folder for <host>/verify.json (default: <bundle name>.remote).",
            show_default=False,
            metavar="USER@HOST",
        ),
    ] = None,
    ssh_config: Annotated[
        Path | None,
        typer.Option(
            "--ssh-config",
            help="ssh client config for --remote (passed as -F). Extra ssh options: env EDGEKIT_SSH_OPTIONS.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    remote_dir: Annotated[
        str,
        typer.Option(
            "--remote-dir", help="Folder on the --remote hosts for edgekit's venv and the copied bundle.", metavar="DIR"
        ),
    ] = "~/.cache/edgekit-remote",
) -> None:
    """Check a bundle on this machine: sha256 of every file, then each artifact's outputs against the desktop's.

    Artifacts whose runtime is not installed are skipped with a note. Limits on max |Δp|: fp32 1e-5;
    fp16 1e-3; int8 one quantization step of the output (its scale, else 1/256). Writes verify.json
    with this machine's environment. Exit codes: 0 all match; 1 bad or tampered bundle (one line);
    3 an artifact's outputs differ beyond its tolerance.
    With --remote, each host runs the check over ssh (BatchMode; your ~/.ssh/config and keys) and its
    verify.json comes back as <bundle name>.remote/<host>/verify.json; exit 1 if any host failed, else 3
    if any mismatched.
    Example: [b]edgekit verify edgekit-bundle.tar.gz[/] or [b]edgekit verify b.tar.gz --remote pi@board[/]
    """
    if remote:
        if emulate is not None:
            from toolkit.errors import ToolkitError

            raise ToolkitError("--remote and --emulate cannot be combined; pass one of them.")
        _verify_remote(bundle_path, remote, out_path, ssh_config, remote_dir)
        return
    if emulate is not None:
        from toolkit.emulate import emulated_verify, print_report

        target, emulated = emulated_verify(bundle_path, emulate.value, out_path)
        print_report(bundle_path, target, emulated)
        if not emulated["passed"]:
            failed = [r["artifact"] for r in emulated["results"] if not r["passed"]]
            err.print(
                f"[bold red]mismatch[/] for {escape(', '.join(failed))} (see {escape(str(target))})", highlight=False
            )
            raise typer.Exit(EXIT_THRESHOLD)
        return
    from exporters.files import write_json_atomic
    from toolkit.bundle import check_files, default_verify_path, load_bundle, open_bundle, verify_bundle

    with open_bundle(bundle_path) as root:
        doc = load_bundle(root, bundle_path)
        check_files(root, doc, bundle_path)
        report = verify_bundle(root, doc, bundle_path)
    target = out_path or default_verify_path(bundle_path)
    write_json_atomic(target, report)
    if not _print_verify(report, f"Verify {bundle_path}", target):
        raise typer.Exit(EXIT_THRESHOLD)


def _verify_remote(
    bundle_path: Path, hosts: list[str], out_root: Path | None, ssh_config: Path | None, remote_dir: str
) -> None:
    """`verify --remote`: every host in parallel, then each host's table and a one-line summary per host."""
    import json

    from toolkit.remote import SshSettings, exit_code, print_summary, run_remote_verify

    settings = SshSettings.from_env(config=ssh_config, remote_dir=remote_dir)
    results = run_remote_verify(bundle_path, hosts, settings, out_root=out_root)
    for r in results:
        if r.path is not None:
            _print_verify(json.loads(r.path.read_text()), f"Verify {bundle_path} on {r.host}", r.path)
    print_summary(results, "verify")
    code = exit_code(results)
    if code:
        raise typer.Exit(code)


def _print_verify(report: dict[str, Any], title: str, target: Path) -> bool:
    """Print a verify report: table, skips, errors, where it is; on a mismatch a note, and False."""
    rows = []
    for r in report["results"]:
        if r["status"] == "error":
            rows.append([r["artifact"], r.get("backend") or r.get("runtime") or "", "-", "-", "-", "-", "error"])
            continue
        rows.append(
            [
                r["artifact"],
                r.get("backend") or "",
                f"{r['max_abs_diff']:.2e}",
                _tolerance_text(r["tolerance"]),
                f"{100 * r['accuracy']:.2f} %",
                f"{r['agreement']:.4f}",
                r["status"],
            ]
        )
    images = report["golden"]["images"]
    out.print(
        rich_table(
            f"{title} ({images} golden images)",
            ["artifact", "backend", "max |Δp|", "allowed", "accuracy", "agreement", "result"],
            rows,
        )
    )
    for s in report["skipped"]:
        err.print(f"[yellow]skipped[/] {escape(s['artifact'])}: {escape(s['reason'])}", highlight=False)
    for r in report["results"]:
        if r["status"] == "error":
            err.print(f"[bold red]{escape(r['artifact'])}[/]: {escape(r['error'])}", highlight=False)
    out.print(f"Wrote {escape(str(target))}", highlight=False)
    if not report["passed"]:
        failed = [r["artifact"] for r in report["results"] if not r["passed"]]
        err.print(f"[bold red]mismatch[/] for {escape(', '.join(failed))} (see {escape(str(target))})", highlight=False)
        return False
    return True


def _tolerance_text(tolerance: dict[str, Any]) -> str:
    if tolerance.get("kind") == "quantization_step":
        return f"1 step {float(tolerance['max_abs']):.2g}"
    return f"{float(tolerance['max_abs']):g}"


def register(app: typer.Typer) -> None:
    """Add predict, bundle and verify to the edgekit app."""
    app.command("predict")(user_errors(predict))
    app.command("bundle")(user_errors(bundle))
    app.command("verify")(user_errors(verify))
