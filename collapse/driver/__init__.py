"""The process around Ray that a user starts: a chain run, resumed or checked, watched and
logged, and its generations measured again.

- `launch`: `run_chain`, a chain's run made ready under its lease
  (`collapse.engine.run_opening`) and its generations driven on the cluster's chain actor.
- `dry_run`: what a config would do, written out, doing nothing.
- `progress`: the bar over generations, the line per generation and the summary.
- `tracking`: TensorBoard, MLflow and W&B logs of each committed generation.
- `reevaluation`: `collapse evaluate`'s index of measurements stored beside a run.

The CLI, the Python API and the sweeps sit above it; below it, `collapse.distributed` places
the work on Ray and `collapse.engine` computes it.
"""
