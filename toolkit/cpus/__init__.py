"""Parity under other CPU classes (`edgekit parity --cpu`): the exports re-run under QEMU CPU models.

`models.py` (the emulable CPUs and what they stand for), `launch.py` (the outputs worker natively, under
`qemu-<arch>-static -cpu`, or in the arm64 root) and `step.py` (the comparison, parity.json's `cpu_classes`).
"""
