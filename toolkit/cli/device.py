"""On-device commands: `predict` (classify images), `bundle` (pack a run for a device), `verify`.

Thin adapters over `toolkit.device`: parse the options, call it, print through `toolkit.cli.present`.
Imported at every CLI start: only typer, enum, pathlib, typing, toolkit.cli.console and the light
`toolkit.emulate.boards` at the top; numpy, Pillow and the runtimes are imported inside the commands.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.console import EXIT_THRESHOLD, progress_bar, user_errors
from toolkit.emulate.boards import BOARDS, board_help

# The boards `verify --emulate` imitates, named once in toolkit/emulate/boards.py.
EmulatedBoard = Enum("EmulatedBoard", {name: name for name in BOARDS}, type=str)  # type: ignore[misc]


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
        int, typer.Option("--top-k", "-k", min=1, max=10, help="Show the K most likely classes per image.")
    ] = 1,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON to stdout (and nothing else).")
    ] = False,
    preprocess: Annotated[
        bool,
        typer.Option(
            "--preprocess/--no-preprocess",
            help="For the reference digit model: make images look like MNIST: invert dark-on-light, crop to the "
            "digit, fit 20×20, centre by mass. --no-preprocess only converts to grey and resizes to 28×28. Other "
            "models always get their input's size and colour (bilinear resize).",
        ),
    ] = True,
    mnist_preprocess: Annotated[
        bool,
        typer.Option(
            "--mnist-preprocess",
            help="Use the MNIST digit preprocessing for a model that is not the reference one (28×28 grey input).",
        ),
    ] = False,
    value_range: Annotated[
        str | None,
        typer.Option(
            "--value-range",
            help="Map pixels 0..255 linearly onto LO,HI, e.g. 0,1 or -1,1 (default: the range in the run's "
            "manifest or bundle; else the int8 input's range; else 0..255, as Keras image_dataset_from_directory).",
            metavar="LO,HI",
            show_default=False,
        ),
    ] = None,
    save_inputs: Annotated[
        Path | None,
        typer.Option(
            "--save-inputs",
            help="Also write each model input as a PNG into this folder (to see what the model saw).",
            file_okay=False,
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", "-t", min=1, help="Runtime threads (default: the runtime's).")
    ] = None,
) -> None:
    """Classify images with a TFLite or ONNX model: the reference digit CNN or your own image model.

    For the reference model, photos (dark ink on light paper, any size, digit anywhere) are inverted,
    cropped, scaled and centred the way MNIST's digits were. Other models get each image converted to
    grey or RGB and resized (bilinear) to their input; class names come from the run's manifest or the
    bundle; logits are reported as their softmax, regression outputs as values. A run directory or
    bundle is checked against its sha256 first.
    Example: [b]edgekit predict runs/latest/exports/model_int8.tflite digit.jpg -k 3[/]
    """
    from toolkit.cli.fast import run_predict

    run_predict(
        model, images, artifact=artifact, top_k=top_k, json_out=json_out, preprocess=preprocess,
        save_inputs=save_inputs, threads=threads, mnist_preprocess=mnist_preprocess, value_range=value_range,
    )  # fmt: skip


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
        int | None,
        typer.Option(
            "--golden",
            min=1,
            max=10000,
            help="Golden test rows: the last N of the data's test split (default: 256, or all if fewer).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Data for the golden inputs (default: the run's own, or shipped MNIST): an MNIST source, or for "
            "a run made with --model an .npz or a folder of images per class.",
        ),
    ] = None,
) -> None:
    """Pack a run's artifacts with golden inputs and the desktop's outputs for a device; check with `verify`.

    Writes the artifacts, golden/inputs.npy (test rows of the run's data in the model's input shape) and
    labels.npy (targets.npy for a regression model), expected/<artifact>.npy, manifest.json and
    bundle.json (desktop environment, I/O specs, model specs, tolerances, sha256 of every file), atomically.
    Example: [b]edgekit bundle runs/latest --out edgekit-bundle.tar.gz[/]
    """
    import toolkit
    from toolkit.cli.present import print_bundle
    from toolkit.run.documents import dump_document

    with progress_bar() as progress:
        task = progress.add_task("bundle", total=None)
        path, doc = toolkit.bundle(
            run_dir,
            out_path,
            artifacts=artifact,
            golden=golden,
            force=force,
            data=data,
            on_step=lambda msg: progress.update(task, description=msg),
        )
        progress.update(task, description="bundle: done", total=1, completed=1)
    print_bundle(path, dump_document(doc))


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
            help="Verify on an emulated board instead of this machine: a cached Debian root run under QEMU "
            f"user-mode with the board's CPU ({board_help()}); pi3 is 32-bit (armhf, Python 3.9, TFLite-only: "
            "ONNX artifacts are skipped). Needs root and qemu-user-static, binfmt-support, debootstrap; the first "
            "run builds the root (~5 min; pi3 also builds numpy once, ~15 min). Writes "
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
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="With --remote: install the hosts' dependencies from a wheelhouse downloaded here for their "
            "platform, never from their package index (default: the index, then the wheelhouse if a host's pip "
            "cannot reach one).",
        ),
    ] = False,
) -> None:
    """Check a bundle on this machine: sha256 of every file, then each artifact's outputs against the desktop's.

    Artifacts whose runtime is not installed are skipped with a note. Limits on max |Δp|: fp32 1e-5;
    fp16 1e-3; int8 one quantization step of the output (its scale, else 1/256). Logits and regression
    values are compared raw, the float limits times max(1, max |output|). Writes verify.json
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
        _verify_remote(bundle_path, remote, out_path, ssh_config, remote_dir, offline)
        return
    import toolkit
    from toolkit.cli.present import print_emulate_note, print_verify
    from toolkit.run.documents import dump_document

    target, report = toolkit.verify(
        bundle_path,
        out=out_path,
        emulate=None if emulate is None else emulate.value,
        on_step=print_emulate_note if emulate is not None else None,
    )
    if not print_verify(dump_document(report), bundle_path, target):
        raise typer.Exit(EXIT_THRESHOLD)


def _verify_remote(
    bundle_path: Path,
    hosts: list[str],
    out_root: Path | None,
    ssh_config: Path | None,
    remote_dir: str,
    offline: bool = False,
) -> None:
    """`verify --remote`: every host in parallel, then each host's table and a one-line summary per host."""
    import json

    import toolkit
    from toolkit.cli.present import print_host_event, print_summary, print_verify
    from toolkit.remote.hosts import exit_code
    from toolkit.remote.ssh import SshSettings

    settings = SshSettings.from_env(config=ssh_config, remote_dir=remote_dir)
    results = toolkit.verify_remote(
        bundle_path, hosts, ssh=settings, out_root=out_root, events=print_host_event, offline=offline
    )
    for r in results:
        if r.path is not None:
            print_verify(json.loads(r.path.read_text()), bundle_path, r.path)
    print_summary(results, "verify")
    code = exit_code(results)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add predict, bundle and verify to the edgekit app."""
    app.command("predict")(user_errors(predict))
    app.command("bundle")(user_errors(bundle))
    app.command("verify")(user_errors(verify))
