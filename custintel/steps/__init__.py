"""Pipeline steps as plain functions of (settings, ...). The CLI, `dvc repro` and the Prefect
flow all call these; none of them holds logic of its own."""
