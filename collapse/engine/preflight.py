"""The checks of a chain config that need code, not only the config: run before anything is
written, before Ray starts, wherever a config is about to run (`collapse run` and `resume`,
`--dry-run`, a sweep's trials, `collapse submit`, `collapse evaluate`).

Validation (`collapse.config`) checks what the config alone says. What needs the registries of
code it names is checked here: a strategy's needs (its model family, real rows in every
generation, its corrector registered and importable, `collapse.strategies`), the rows each
metric needs (`collapse.metrics`), and what a parquet dataset's index says of its rows (their
kind, shape and count) against the model, the feature space and the metrics. Each problem is
one `UserError` line, worded as a config error where it is one.
"""

from __future__ import annotations

from collapse.config import IMAGE_METRICS, VECTOR_METRICS, ChainConfig, model_problem
from collapse.data import real
from collapse.data.space import DataSpace
from collapse.errors import UserError, one_line
from collapse.metrics import features, rows_problem
from collapse.store.run_store import RunStore
from collapse.strategies import get_strategy


def check(config: ChainConfig) -> ChainConfig:
    """`config`, if its strategy and its metrics can run it; else a config error."""
    problem = get_strategy(config.strategy.name).check(config)
    if problem is None and config.eval.metrics is not None:
        problem = rows_problem(
            config.eval.metrics, config.data.n_eval, config.samples_per_generation
        )
    if problem is not None:
        raise UserError(one_line(f"config error: {problem}"))
    return config


def check_data_fit(config: ChainConfig, space: DataSpace, uri: str) -> None:
    """What the config asks of data it could not see (a parquet dataset's kind and shape):
    image features and families need images of a shape they read, metrics enough rows."""
    if config.model.family == "stable_diffusion" and space.kind != "image":
        raise UserError(f"model.family: stable_diffusion needs images; {uri} holds vectors")
    problem = model_problem(config.model, space.kind)
    if problem:
        raise UserError(f"{problem} ({uri} holds {space.kind}s)")
    features.check_fits(features.resolve(config.eval.features, space), space)
    default = VECTOR_METRICS if space.kind == "vector" else IMAGE_METRICS
    problem = rows_problem(
        config.eval.metrics or default, config.data.n_eval, config.samples_per_generation
    )
    if problem:
        raise UserError(problem)


def check_real_data(config: ChainConfig, store: RunStore) -> None:
    """The user's own real data, whole, before anything is written to the run: a parquet
    dataset's rows against the config, then every value (`collapse.data.real.check_user_data`)."""
    dataset = real.parquet_dataset(config)
    if dataset is not None:
        check_data_fit(config, DataSpace.of_index(dataset.index), dataset.uri)
    real.check_user_data(config, store, dataset)
