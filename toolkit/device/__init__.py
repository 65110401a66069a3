"""On-device work: everything between a finished run and a board.

What lives here, one concern a module:

    photo.py          MNIST-style preprocessing of digit photos for `edgekit predict` (the reference model)
    images.py         reading any image file or .npy array as grey or RGB pixels (size limits, one-line errors)
    model_input.py    images → any model's input (resize, value range) and its outputs (logits, values)
    predict.py        which model file and spec to use (file, run directory or bundle) and classifying images
    bundle_format.py  what a bundle holds: file names, bundle.json checks, sha256 of every file, opening one
    archive.py        gzipped tar files: written reproducibly, extracted safely
    bundle.py         building a bundle from a run
    verify.py         the tolerances and checking a bundle's golden outputs on this machine
    boards.py         the boards `verify --emulate` imitates (names, QEMU CPUs, /proc/cpuinfo)
    wheel.py          the one edgekit wheel builder and the local cache (EDGEKIT_CACHE_DIR)
    ssh.py            ssh/scp argv and one host's calls (user's OpenSSH, BatchMode)
    remote_setup.py   the runtime-only edgekit venv on a remote host
    wheelhouse.py     wheels downloaded here for an offline host's platform
    lite.py           the TFLite-only install for 32-bit ARM (tflite-runtime 2.13, numpy built under QEMU)
    remote.py         `verify --remote` and `bench --remote`: hosts in parallel, results fetched back
    chroot.py         running commands in an ARM root: binfmt, mounts, the board's /proc/cpuinfo, QEMU_CPU
    rootfs.py         building and caching the arm64 and armhf Debian roots for emulation
    emulate.py        `verify --emulate`: the emulated board's verify run

May import: `runtimes`, `benchmarks`, `runtimes.files`, `toolkit.model.spec`, `toolkit.model.run_source`
(a run's data and spec, for bundle.py), `toolkit.data`, `toolkit.errors` and `toolkit.run`. Never the CLI,
Rich or Typer: nothing here prints; progress goes
through plain callbacks, and the one verify table lives in `toolkit/cli/present.py`.
numpy, Pillow and the runtimes are imported where they are needed, so the CLI can import the light
modules (`boards`, `errors`) at start-up.
"""
