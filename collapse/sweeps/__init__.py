"""A study as one experiment: a base chain config and a search space over its keys.

A collapse study is a grid (real_fraction x loop x strategy x seed, ...). The sweep file names
the base config, the space, each trial's resources and an optional early stop; `definition`
reads it, checks all of it before Ray starts and stores it with the sweep
(`create_or_resume_sweep`); `collapse.distributed.tune` runs it as one Ray Tune experiment, a
trial per point of the space, each trial one chain run. The file's schema and its points are
pure config (`collapse.config.sweep_schema`, `collapse.config.sweep_space`); the trials on
storage are `collapse.store.sweep_trials`'.

A trial's chain is an ordinary run, so a trial restarted after the driver died resumes from its
last committed generation, and `collapse report` reads the trials like any runs. A sweep whose
base raises `generations` extends every trial: Tune does not rerun a finished trial, and a
fresh experiment over the space would draw new values for its random keys, so an extension is
an experiment of its own (`tune-g<N>/`) whose trials are the stored ones, by name, each
continuing its chain from its last committed generation.
"""
