"""The Ray glue, and the only package that imports ray: the math, the data and the chain engine
do not (an import-linter contract checks it).

- `runtime`: a local cluster started on demand, or the one RAY_ADDRESS names.
- `chain_actor`: a chain's generations in one actor; `orphans`: what a killed driver left.
- `ray_backend`: the engine's Ray backend: training on Ray Train (`train`, fed by
  `training_set`), sampling on a Ray Data pool (`sampling_pool`), image evaluation
  (`evaluation_task`), VAE encoding (`encoding_tasks`) and the knn search (`knn_search`).
- `resources`: what a chain asks the cluster for, step by step.
- `tune` and `tune_trackers`: a sweep as one Ray Tune experiment; `jobs`: Ray Jobs.
- `measure_tasks` (`collapse evaluate` as Ray tasks), `stored_shards` (a run's shards as a
  Ray Dataset).
"""
