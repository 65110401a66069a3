"""On-device commands: `predict` (classify images), `bundle` (pack a run for a device), `verify`.

Thin adapters over `toolkit.inputs`, `toolkit.bundles`, `toolkit.remote` and `toolkit.emulate` (through the API):
parse the options, call it, print through `toolkit.cli.present`.
Imported at every CLI start: only typer, enum, pathlib, typing, toolkit.cli's console, options and specs, and
the light `toolkit.emulate.boards` at the top; numpy, Pillow and the runtimes are imported inside the commands.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli.console import EXIT_THRESHOLD, progress_bar
from toolkit.cli.options import (
    REMOTE_DIR,
    RUNS_DIR,
    AllowUnverifiedOpt,
    BundleArtifactsOpt,
    BundleOutOpt,
    Busy,
    BusyOpt,
    CoordinatorOpt,
    DataOpt,
    FarmOpt,
    InventoryOpt,
    OfflineOpt,
    PlaceOpt,
    RemoteDirOpt,
    RemoteOpt,
    RunDirArg,
    RunsDirOpt,
    SshConfigOpt,
    VerifyOutOpt,
    WaitTimeoutOpt,
    resolve_run,
    typer_option,
    wants_boards,
    wants_farm,
)
from toolkit.cli.specs import PREDICT_OPTIONS
from toolkit.emulate.boards import BOARDS, board_help

if TYPE_CHECKING:
    from collections.abc import Sequence

    from toolkit.remote.boards import Board

# The boards `verify --emulate` imitates, named once in toolkit/emulate/boards.py.
EmulatedBoard = Enum("EmulatedBoard", {name: name for name in BOARDS}, type=str)  # type: ignore[misc]

# predict's options, made from their one declaration (toolkit.cli.specs), which its fast path also reads.
_PREDICT = {spec.dest: typer_option(spec) for spec in PREDICT_OPTIONS}
PredictArtifactOpt = Annotated[str | None, _PREDICT["artifact"]]
TopKOpt = Annotated[int, _PREDICT["top_k"]]
JsonOpt = Annotated[bool, _PREDICT["json_out"]]
PreprocessOpt = Annotated[bool, _PREDICT["preprocess"]]
MnistPreprocessOpt = Annotated[bool, _PREDICT["mnist_preprocess"]]
ValueRangeOpt = Annotated[str | None, _PREDICT["value_range"]]
SaveInputsOpt = Annotated[Path | None, _PREDICT["save_inputs"]]
PredictThreadsOpt = Annotated[int | None, _PREDICT["threads"]]
_DEFAULT = {spec.dest: spec.default for spec in PREDICT_OPTIONS}


def predict(
    model: Annotated[
        Path,
        typer.Argument(
            help="A .tflite, .onnx or OpenVINO .xml file, or a run directory / bundle (folder or .tar.gz) with "
            "--artifact.",
            show_default=False,
        ),
    ],
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Images: PNG, JPEG, BMP (any size; grey, RGB, RGBA, palette or 16-bit) or .npy arrays; for a "
            "model with several inputs, .npz files with one array per input name (one sample or a batch).",
            show_default=False,
        ),
    ],
    artifact: PredictArtifactOpt = _DEFAULT["artifact"],
    top_k: TopKOpt = _DEFAULT["top_k"],
    json_out: JsonOpt = _DEFAULT["json_out"],
    preprocess: PreprocessOpt = _DEFAULT["preprocess"],
    mnist_preprocess: MnistPreprocessOpt = _DEFAULT["mnist_preprocess"],
    value_range: ValueRangeOpt = _DEFAULT["value_range"],
    save_inputs: SaveInputsOpt = _DEFAULT["save_inputs"],
    threads: PredictThreadsOpt = _DEFAULT["threads"],
) -> None:
    """Classify images with a TFLite, ONNX or OpenVINO IR model: the reference digit CNN or your own image model.

    For the reference model, photos (dark ink on light paper, any size, digit anywhere) are inverted,
    cropped, scaled and centred the way MNIST's digits were. Other models get each image converted to
    grey or RGB and resized (bilinear) to their input; class names come from the run's manifest or the
    bundle; logits are reported as their softmax, regression outputs as values. A run directory or
    bundle is checked against its sha256 first. A model with several inputs takes samples instead: an
    .npz with one array per input name, values as the model takes them; each output of each sample is printed.
    Example: [b]edgekit predict runs/latest/exports/model_int8.tflite digit.jpg -k 3[/]
    """
    from toolkit.cli.fast import run_predict

    run_predict(
        model,
        images,
        artifact=artifact,
        top_k=top_k,
        json_out=json_out,
        preprocess=preprocess,
        save_inputs=save_inputs,
        threads=threads,
        mnist_preprocess=mnist_preprocess,
        value_range=value_range,
    )


def bundle(
    run_dir: RunDirArg = None,
    *,
    out_path: BundleOutOpt,
    runs_dir: RunsDirOpt = RUNS_DIR,
    artifact: BundleArtifactsOpt = None,
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
    data: DataOpt = None,
    allow_unverified: AllowUnverifiedOpt = False,
) -> None:
    """Pack a run's artifacts with golden inputs and the desktop's outputs for a device; check with `verify`.

    Writes into --out (a folder, or an archive when it ends in .tar.gz), atomically: the artifacts,
    golden/inputs.npy (test rows of the run's data in the model's input shape) and labels.npy
    (targets.npy for a regression model), expected/<artifact>.npy, manifest.json and bundle.json
    (desktop environment, I/O specs, model specs, tolerances, sha256 of every file).
    Example: [b]edgekit bundle runs/latest --out edgekit-bundle.tar.gz[/]
    """
    import toolkit
    from toolkit.cli.present import print_bundle
    from toolkit.cli.show import _load_data
    from toolkit.run.documents import dump_document

    run = resolve_run(run_dir, runs_dir)
    dataset = _load_data(data, allow_unverified, run)
    with progress_bar() as progress:
        task = progress.add_task("bundle", total=None)
        path, doc = toolkit.bundle(
            run,
            out_path,
            artifacts=artifact,
            golden=golden,
            force=force,
            data=dataset,
            on_step=lambda msg: progress.update(task, description=msg),
        )
        progress.update(task, description="bundle: done", total=1, completed=1)
    print_bundle(path, dump_document(doc))


def verify(
    bundle_path: Annotated[
        Path, typer.Argument(help="Bundle folder or .tar.gz made by `edgekit bundle`.", show_default=False)
    ],
    out_path: VerifyOutOpt = None,
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
) -> None:
    """Check a bundle on this machine: sha256 of every file, then each artifact's outputs against the desktop's.

    Artifacts whose runtime is not installed are skipped with a note. Limits on max |Δp|: {MACHINE_HELP}.
    Logits and regression values are compared raw, the float limits times max(1, max |output|). Writes verify.json
    with this machine's environment. Exit codes: 0 all match; 1 bad or tampered bundle (one line);
    3 an artifact's outputs differ beyond its tolerance.
    With --remote, each host runs the check over ssh (BatchMode; your ~/.ssh/config and keys; a runtime-only
    edgekit is installed there once and reused) and its verify.json comes back as
    <bundle name>.remote/<host>/verify.json (or --out/<host>/verify.json); exit 1 if any host failed, else 3
    if any mismatched.
    With --place/--farm, labgrid places are acquired, used over their NetworkService and released (results under
    <place>/); --inventory fans out over a TOML file of SSH boards instead.
    Example: [b]edgekit verify edgekit-bundle.tar.gz[/] or [b]edgekit verify b.tar.gz --remote pi@board[/]
    """
    if wants_boards(remote, place, farm, inventory) or wants_farm(coordinator):
        from toolkit.remote.boards import chosen_boards

        if emulate is not None:
            from toolkit.errors import ToolkitError

            raise ToolkitError("--remote and --emulate cannot be combined; pass one of them.")
        with chosen_boards(
            remote or (), place or (), farm or (), inventory, coordinator, busy.value, wait_timeout
        ) as boards:
            _verify_remote(bundle_path, boards, out_path, ssh_config, remote_dir, offline)
    else:
        _verify_here(bundle_path, out_path, None if emulate is None else emulate.value)


def _verify_here(bundle_path: Path, out_path: Path | None, emulate: str | None) -> None:
    """`verify` on this machine, or with `emulate` on an emulated board: the table, exit 3 on a mismatch."""
    import toolkit
    from toolkit.cli.present import print_emulate_note, print_verify
    from toolkit.run.documents import dump_document

    target, report = toolkit.verify(
        bundle_path, out=out_path, emulate=emulate, on_step=print_emulate_note if emulate is not None else None
    )
    if not print_verify(dump_document(report), bundle_path, target):
        raise typer.Exit(EXIT_THRESHOLD)


def _verify_remote(
    bundle_path: Path,
    hosts: Sequence[str | Board],
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
