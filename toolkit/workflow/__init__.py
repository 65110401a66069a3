"""The workflow: steps run in order over one run directory, above the steps and reports it calls.

`pipeline.py`: train (or import the user's model) → export → parity → bench → diagnose → report → bundle in
one run directory, resumable (`run.json` keeps the options; a step is skipped while its outputs still match).
The API (`toolkit.api.pipeline`) is its one caller besides the CLI's `report_step`.
May import everything below the API (steps, diagnosis, reports, bundles, model, data, the run layout); never
`toolkit.api` or the CLI.
"""
