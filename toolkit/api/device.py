"""The API for devices: predict, bundle, verify (here, on boards over SSH, or under QEMU), bench on boards.

Importing this module is cheap; numpy, Pillow, the runtimes and pydantic load inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.data.mnist import Mnist
    from toolkit.inputs.predict import Predictions
    from toolkit.remote.boards import Board
    from toolkit.remote.hosts import HostResult
    from toolkit.remote.ssh import Events, SshSettings
    from toolkit.run.documents import BenchDocument, BundleDocument, VerifyDocument
    from toolkit.steps.bench_settings import BenchSettings


def predict(
    model: Path | str,
    images: Sequence[Path | str],
    *,
    artifact: str | None = None,
    top_k: int = 1,
    preprocess: bool = True,
    threads: int | None = None,
    save_inputs: Path | str | None = None,
    mnist_preprocess: bool = False,
    value_range: tuple[float, float] | str | None = None,
) -> Predictions:
    """Classify images (or .npy arrays) with a model file, run directory or bundle.

    For the reference digit model, with `preprocess`, each image is made to look like an MNIST digit
    first (grey, inverted when dark on light, cropped, scaled to 20×20, centred by mass in 28×28). Any
    other image model gets its input's size and colour (bilinear resize) with pixels 0..255 mapped onto
    `value_range` ("LO,HI" or a pair; default: the model's spec, else 0..255); `mnist_preprocess` asks
    for the digit preprocessing on any 28×28 grey model. A model with several inputs takes `.npz` files instead
    of images, one array per input name (`toolkit.inputs.samples`), and each result lists every output.
    `Predictions.to_dict()` is `predict --json`.
    """
    from toolkit.inputs.model_input import parse_value_range
    from toolkit.inputs.predict import predict_images

    if isinstance(value_range, str):
        value_range = parse_value_range(value_range)
    elif value_range is not None:
        value_range = parse_value_range(f"{value_range[0]},{value_range[1]}")
    return predict_images(
        Path(model),
        [Path(i) for i in images],
        artifact=artifact,
        top_k=top_k,
        preprocess=preprocess,
        threads=threads,
        save_inputs=None if save_inputs is None else Path(save_inputs),
        mnist_preprocess=mnist_preprocess,
        value_range=value_range,
    )


def bundle(
    run_dir: Path | str | None,
    out: Path | str,
    *,
    artifacts: Sequence[str] | None = None,
    golden: int | None = None,
    force: bool = False,
    data: str | Path | Mnist | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[Path, BundleDocument]:
    """Pack a run's artifacts, golden inputs and the desktop's outputs for a board (a folder or a .tar.gz).

    The golden inputs are the last `golden` rows (default 256, or all if fewer) of the test split of
    `data` (an .npz, a folder of images per class, an MNIST source or MNIST loaded); by default the run's own data
    (dataset.json), or shipped MNIST for a reference run. Regression models get their targets, not labels.
    """
    from toolkit.bundles.build import build_bundle

    return build_bundle(
        None if run_dir is None else Path(run_dir),
        Path(out),
        artifact_names=list(artifacts) if artifacts else None,
        golden=golden,
        force=force,
        data=data,
        on_step=on_step,
    )


def verify(
    bundle: Path | str,
    *,
    out: Path | str | None = None,
    emulate: str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> tuple[Path, VerifyDocument]:
    """Check a bundle here (or, with `emulate="pi3"`/`"pi4"`/`"pi5"`, in an ARM root under QEMU): sha256 of every
    file, then each artifact's outputs against the desktop's. Writes verify.json and returns (its path, it).

    `doc.passed` is False when an artifact's outputs differ beyond its tolerance (the CLI exits 3).
    """
    from toolkit.run.documents import VerifyDocument, parse_document, write_document

    bundle_path = Path(bundle)
    out_path = None if out is None else Path(out)
    if emulate is not None:
        from toolkit.emulate.verify import emulated_verify

        return emulated_verify(bundle_path, emulate, out_path, say=on_step)
    from toolkit.bundles.format import default_verify_path
    from toolkit.bundles.verify import verify_here

    # verify_here is the board install's code (no pydantic there): its report is checked here.
    target = out_path or default_verify_path(bundle_path)
    doc = parse_document(verify_here(bundle_path, on_step), VerifyDocument, source=target)
    write_document(target, doc)
    return target, doc


def verify_remote(
    bundle: Path | str,
    hosts: Sequence[str | Board],
    *,
    ssh: SshSettings | None = None,
    out_root: Path | str | None = None,
    events: Events | None = None,
    offline: bool = False,
) -> list[HostResult]:
    """`verify` on every host in parallel over the user's OpenSSH; each host's verify.json is fetched back.

    One failing host never stops the others: each `HostResult` says "ok", "threshold", "error" or "skipped".
    A host is an ssh destination, or a `toolkit.remote.boards.Board`: an inventory entry, or a labgrid place
    (`toolkit.remote.farm.Farm.select`) acquired around its job and released afterwards.
    Hosts without SFTP are reached with legacy scp or a stream over ssh. `offline=True` installs the
    hosts' dependencies from a wheelhouse downloaded here for their platform (by default only when a
    host's pip cannot reach its index).
    """
    from toolkit.remote.hosts import run_remote_verify

    root = None if out_root is None else Path(out_root)
    return run_remote_verify(Path(bundle), hosts, ssh, out_root=root, events=events, offline=offline)


def bench_remote(
    target: Path | str,
    hosts: Sequence[str | Board],
    *,
    settings: BenchSettings | None = None,
    artifacts: Sequence[str] | None = None,
    ssh: SshSettings | None = None,
    events: Events | None = None,
    on_results: Callable[[list[HostResult]], None] | None = None,
    offline: bool = False,
) -> dict[str, BenchDocument]:
    """`bench` on every host with these `BenchSettings` (sent as parameters, not a command line).

    Each host's bench.json lands in `remote_bench_path(target, host)` and joins the run's report.
    Copies and `offline` as in `verify_remote`.

    Raises:
        RemoteFailed: after every host finished, if any failed; `.documents` holds the others' results.
    """
    from toolkit.remote.hosts import RemoteFailed, run_remote_bench
    from toolkit.run.documents import BenchDocument, load_document
    from toolkit.steps.bench_settings import BenchSettings

    results = run_remote_bench(
        Path(target), hosts, settings or BenchSettings(), tuple(artifacts or ()), ssh, events=events, offline=offline
    )
    if on_results is not None:
        on_results(results)
    docs = {r.host: load_document(r.path, BenchDocument) for r in results if r.path is not None}
    failed = [r for r in results if r.status == "error"]
    if failed:
        raise RemoteFailed(
            f"remote bench failed on {len(failed)} of {len(results)} host(s): {', '.join(r.host for r in failed)} "
            "(reasons above)",
            results,
            documents=docs,
        )
    return docs


def remote_bench_path(target: Path | str, host: str) -> Path:
    """Where `bench_remote` puts a host's bench.json (`RUN/remote/<host>/` or `<bundle>.remote/<host>/`)."""
    from toolkit.remote.hosts import host_dirname, remote_output_root

    return remote_output_root(Path(target)) / host_dirname(host) / "bench.json"
