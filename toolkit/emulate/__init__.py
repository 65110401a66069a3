"""Emulated ARM boards: `verify --emulate` in a cached Debian root under QEMU user-mode.

    boards.py         the boards imitated (names, QEMU CPUs, /proc/cpuinfo); the CLI imports it at start-up
    chroot.py         running commands in an ARM root: binfmt, mounts, the board's /proc/cpuinfo, QEMU_CPU
    rootfs.py         building and caching the arm64 and armhf Debian roots (and numpy for armv7l, once)
    verify.py         `verify --emulate`: the emulated board's verify run
    errors.py         `EmulateError`

`toolkit.cpus` runs its arm64 CPU classes in the same root. May import: `runtimes`, `benchmarks`,
`toolkit.bundles`, `toolkit.remote` (the edgekit wheel and the TFLite-only set the roots install),
`toolkit.errors`. Never the CLI, Rich or Typer.
"""
