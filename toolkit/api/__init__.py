"""edgekit's Python API, one function per step; `toolkit/__init__.py` exports them: `toolkit.train(...)`.

`steps.py`: new_run, train, export, parity, bench, gate, report, diagnose (the run directory);
`pipeline.py`: pipeline_options, pipeline (all the steps in a new run, resumable; run by `toolkit.workflow`);
`device.py`: predict, bundle, verify, verify_remote, bench_remote (images, bundles and boards); `mcu.py`: mcu
(TensorFlow Lite Micro).
Importing it is cheap: every heavy library loads inside the function that needs it.
May import everything below the CLI; never `toolkit.cli`, Rich or Typer.
"""
