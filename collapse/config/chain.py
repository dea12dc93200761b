"""The chain's whole config (`ChainConfig`) and the rules that tie its sections together."""

from __future__ import annotations

from pydantic import Field, model_validator

from collapse.config.base import Section
from collapse.config.data_section import BUILTIN_ROWS, DataConfig, data_kind
from collapse.config.metric_names import IMAGE_METRICS, VECTOR_METRICS, flow_problem
from collapse.config.model_section import GaussianModel, ModelConfig, model_problem
from collapse.config.schedule import real_counts, schedule_problem
from collapse.config.step_sections import (
    EvalConfig,
    SampleConfig,
    TrackingConfig,
    TrainConfig,
)
from collapse.config.strategy_section import NoStrategyConfig, StrategyConfig


class ChainConfig(Section):
    name: str = Field("quickstart", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    storage: str = Field("./runs", min_length=1)
    generations: int = Field(5, ge=1, le=1_000_000)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=lambda: GaussianModel(family="gaussian"))
    strategy: StrategyConfig = Field(default_factory=NoStrategyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @property
    def samples_per_generation(self) -> int:
        """`sample.n` as validation resolved it (`data.n_train` where it was not given)."""
        return self.data.n_train if self.sample.n is None else self.sample.n

    @model_validator(mode="after")
    def _resolve(self) -> ChainConfig:
        strategy = self.strategy
        kind = data_kind(self.data.real)
        if self.model.family == "stable_diffusion":
            if kind == "vector":
                raise ValueError(
                    f"model.family: stable_diffusion needs images, not {self.data.real}"
                )
            if strategy.name != "none":
                raise ValueError(
                    "strategy.name: stable_diffusion chains run without a strategy (none); "
                    "no corrector here keeps an image's caption"
                )
        if self.sample.n is None:
            self.sample.n = self.data.n_train
        if self.eval.features == "auto" and kind is not None:
            self.eval.features = (
                "raw"
                if kind == "vector"
                else "digits-cnn"
                if self.data.real == "sklearn:digits"
                else "inception"
            )
        if self.eval.metrics is None and kind is not None:
            self.eval.metrics = list(VECTOR_METRICS if kind == "vector" else IMAGE_METRICS)
        data = self.data
        problem = schedule_problem(data.real_fraction, self.generations)
        if problem:
            raise ValueError(f"data.real_fraction: {problem}")
        if data.loop != "accumulate":
            stop = max(self.generations, 2)  # the generations after 0 (one, if there are none)
            fewest = real_counts(
                data.loop, data.n_train, data.real_fraction, stop, self.generations
            )
            needed = data.n_train - int(fewest.min())
            if self.sample.n < needed:
                raise ValueError(
                    f"sample.n: {self.sample.n} is below the {needed} synthetic rows each "
                    f"generation's training set needs (n_train x (1 - real_fraction))"
                )
        check_data_needs(self)
        return self


def check_data_needs(config: ChainConfig) -> None:
    """What the data must give that is known before any is read: rows of a built-in source,
    a model and metrics that suit the data's kind, images for the image extractors. ValueError
    (a config error) otherwise. What needs the registries of code (a strategy's needs, the rows
    a metric needs) is `collapse.engine.preflight`'s."""
    data, features = config.data, config.eval.features
    problem = model_problem(config.model, data_kind(data.real))  # a parquet's: when opened
    if problem:
        raise ValueError(problem)
    split_rows = BUILTIN_ROWS.get(data.real)
    if split_rows is not None:
        for key, have, split in (
            ("data.n_real", data.n_real, "training"),
            ("data.n_eval", data.n_eval, "test"),
        ):
            rows = split_rows[split == "test"]
            if have > rows:
                raise ValueError(f"{key}: {data.real} has {rows} {split} rows, got {have}")
    problem = flow_problem(config.eval.metrics, config.model.family)
    if problem:
        raise ValueError(problem)
    if data_kind(data.real) == "vector" and features in ("digits-cnn", "inception"):
        raise ValueError(f"eval.features: {features} is for images; {data.real} is vectors: raw")
    rgb = data.real == "torchvision:cifar10" or data.real.startswith("folder:")
    if features == "digits-cnn" and rgb:
        raise ValueError(
            f"eval.features: digits-cnn reads single-channel images; {data.real} is RGB: "
            "use inception or raw"
        )
