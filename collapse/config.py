"""Typed, validated run configuration: DESIGN.md's keys as pydantic models.

Config is data. Every key is validated strictly (unknown keys and wrong types are errors, not
silently coerced) so that a typo in a sweep never runs a week of GPU time with a default value.
Validation failures become one line naming the key and what is allowed (`UserError`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collapse.errors import UserError, one_line

IDEAL_SOURCES = ("toy:gaussian", "toy:mog8")  # sources whose true density is known
LOOPS = ("fully_synthetic", "synthetic_augmentation", "fresh_data", "accumulate")
VECTOR_METRICS = ("w2", "mmd", "mean_err", "var", "precision", "recall")
IMAGE_METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")
# measured on a rectified flow's model, not on its samples (collapse.metrics.flow)
FLOW_METRICS = ("straightness", "nfe", "inversion")
METRICS = (*VECTOR_METRICS, "density", "coverage", "fid", "kid", *FLOW_METRICS)
FEATURES = ("auto", "raw", "digits-cnn", "inception")
TOY_SOURCES = {"gaussian": None, "mog8": 2, "two_moons": 2}  # name -> fixed dim (None: data.dim)
EXACT_SOURCES = tuple(f"toy:{n}" for n in TOY_SOURCES)  # sources whose true sampler is known
BUILTIN_SOURCES = ("sklearn:digits", "torchvision:cifar10", "torchvision:mnist")
SOURCE_FORMS = (*(f"toy:{n}" for n in TOY_SOURCES), *BUILTIN_SOURCES, "folder:PATH", "parquet:URI")

Loop = Literal["fully_synthetic", "synthetic_augmentation", "fresh_data", "accumulate"]
Metric = Literal[
    "w2",
    "mmd",
    "mean_err",
    "var",
    "precision",
    "recall",
    "density",
    "coverage",
    "fid",
    "kid",
    "straightness",
    "nfe",
    "inversion",
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def check_source(real: str) -> str:
    kind, _, rest = real.partition(":")
    known = (
        (kind == "toy" and rest in TOY_SOURCES)
        or real in BUILTIN_SOURCES
        or (kind in ("folder", "parquet") and bool(rest))
    )
    if not known:
        raise ValueError(f"unknown source {real!r}; allowed: {', '.join(SOURCE_FORMS)}")
    return real


class DataConfig(Section):
    real: str = "toy:mog8"
    dim: int = Field(2, ge=1, le=65536)
    n_real: int = Field(2000, ge=2, le=10**9)
    n_train: int = Field(2000, ge=2, le=10**9)
    loop: Loop = "fully_synthetic"
    # a number, or a schedule over generations (collapse.data.mix: linear, exponential, list)
    real_fraction: float | list[float] | dict[str, list[float]] = 0.0
    n_eval: int = Field(2000, ge=2, le=10**9)

    @field_validator("real")
    @classmethod
    def _known_source(cls, real: str) -> str:
        return check_source(real)

    @field_validator("real_fraction", mode="before")
    @classmethod
    def _real_fraction(cls, value: Any) -> Any:
        from collapse.data.mix import check_real_fraction

        return check_real_fraction(value)

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        kind, _, name = self.real.partition(":")
        fixed = TOY_SOURCES.get(name) if kind == "toy" else None
        if fixed is not None and self.dim != fixed:
            raise ValueError(
                f"{self.real} is {fixed}-dimensional; dim must be {fixed}, got {self.dim}"
            )
        if self.n_train > self.n_real:
            raise ValueError(
                f"n_train ({self.n_train}) exceeds n_real ({self.n_real}): generation 0 trains "
                "on n_train real rows"
            )
        return self


class GaussianModel(Section):
    """Fit a Gaussian and sample from it (Shumailov et al. 2024)."""

    family: Literal["gaussian"]
    covariance: Literal["diag", "full"] = "diag"
    estimator: Literal["mle", "unbiased"] = "mle"


class KDEModel(Section):
    """Gaussian kernel density estimate; `bandwidth` is a number (in data units) or a rule."""

    family: Literal["kde"]
    bandwidth: Annotated[float, Field(gt=0)] | Literal["scott", "silverman"] = "scott"


class RectifiedFlowModel(Section):
    """Rectified flow (Liu et al. 2022) trained on Ray Train. `net` configures the velocity net
    (vectors: hidden, depth, time_embed; images: preset tiny|small|ddpm_cifar10 plus any
    diffusers UNet2DModel key); `init: previous` warm-starts each generation from the last."""

    family: Literal["rectified_flow"]
    net: dict[str, Any] = Field(default_factory=dict)
    init: Literal["previous", "scratch"] = "previous"


class DDPMModel(Section):
    """DDPM (Ho et al. 2020) trained on Ray Train like rectified flow: the same `net` keys, a
    diffusers noise schedule (`timesteps`, `beta_schedule`), and DDIM (deterministic) or
    ancestral DDPM sampling over `sample.steps` steps."""

    family: Literal["ddpm"]
    net: dict[str, Any] = Field(default_factory=dict)
    init: Literal["previous", "scratch"] = "previous"
    timesteps: int = Field(1000, ge=2, le=100_000)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    sampler: Literal["ddim", "ddpm"] = "ddim"


class StableDiffusionModel(Section):
    """A Stable Diffusion pipeline's UNet fine-tuned on Ray Train (MAD's text-to-image loops).

    `pretrained`: a local pipeline directory (diffusers' save_pretrained layout) or a hub id.
    `finetune`: `lora` (a peft adapter of rank `lora_rank` on the attention projections, the
    base frozen) or `full`. VAE and text encoder are always frozen. Samples are drawn with DDIM
    over `sample.steps` steps and classifier-free guidance `guidance_scale` (<= 1: none) for
    captions of the real set; `sample.bias` scales the initial latent.
    """

    family: Literal["stable_diffusion"]
    pretrained: str = Field(min_length=1)
    finetune: Literal["lora", "full"] = "lora"
    lora_rank: int = Field(4, ge=1, le=1024)
    lora_alpha: float | None = Field(None, gt=0, le=10_000)  # None: lora_rank (a scale of 1)
    guidance_scale: float = Field(7.5, ge=0, le=100)
    init: Literal["previous", "scratch"] = "previous"
    gradient_checkpointing: bool = False
    attention: Literal["sdpa", "xformers"] = "sdpa"

    @field_validator("pretrained")
    @classmethod
    def _absolute(cls, value: str) -> str:
        """A local directory is stored as an absolute path: workers run elsewhere."""
        path = os.path.expanduser(value)
        return os.path.abspath(path) if os.path.isdir(path) else value


class GMMModel(Section):
    """Gaussian mixture fitted by EM (scikit-learn)."""

    family: Literal["gmm"]
    components: int = Field(8, ge=1, le=10_000)
    covariance: Literal["full", "diag", "spherical", "tied"] = "full"
    max_iter: int = Field(200, ge=1, le=100_000)


ModelConfig = Annotated[
    GaussianModel | KDEModel | GMMModel | RectifiedFlowModel | DDPMModel | StableDiffusionModel,
    Field(discriminator="family"),
]
FAMILIES = ("gaussian", "kde", "gmm", "rectified_flow", "ddpm", "stable_diffusion")


SELF_CORRECT_KEYS = (
    "corrector",
    "correct_fraction",
    "strength",
    "k",
    "langevin_steps",
    "step_size",
    "metropolis",
    "level",
    "knn_space",
    "knn_workers",
)
REAL_PAIRING = ("rca_reflow", "ra_reflow")  # strategies that pair real rows by reverse flow
ONLINE = ("ocar", "ora_reflow")  # ... on the fly, per mini-batch, storing nothing


class StrategyConfig(Section):
    """Mitigation of collapse applied by the chain; `none` runs the plain loop.

    `reflow` (rectified_flow only): each generation's samples keep their noise, and the next
    generation trains on those (noise, sample) pairs instead of fresh independent noise: the
    self-consuming reflow loop of Zhu et al. (arXiv 2412.08175) that collapses.

    `rca_reflow` (alias `ra_reflow`: the paper's v1 and v2 names): reflow whose real rows
    (`data.real_fraction` of a mixing loop) are paired with the noise the previous generation's
    model recovers from them by its reverse ODE (`reverse: ode`) or reverse SDE (`reverse: sde`
    with noise strength `sigma`), over `reverse_steps` steps, recomputed every `refresh`
    generations.

    `ocar` (alias `ora_reflow`; with `reverse: sde` the paper's ORAS Reflow): online reflow.
    Nothing is stored; each mini-batch pairs its real rows by the frozen previous model's
    reverse flow and fills the rest with that model's forward pairs from fresh noise.

    `self_correct` (any family; Gillman et al. 2024): a `correct_fraction` of each generation's
    samples is moved toward the true distribution by `corrector` before the next generation
    trains on them, with `strength` in [0, 1] (knn and user: the share of the way to the
    corrector's output; ideal: the share of its Langevin steps run; exact: gamma / (1 + gamma)):
    `exact` (Gillman et al.'s pi_gamma: each row replaced by a draw of the toy source with
    probability `strength`), `ideal` (Langevin on the true density of toy:gaussian/toy:mog8,
    `langevin_steps` of `step_size`, Metropolis-adjusted with `metropolis`; unadjusted, a step
    with step x curvature >= 1 is refused), `knn` (toward the mean of the `k` nearest real
    rows) or `module:function`."""

    name: Literal[
        "none", "reflow", "rca_reflow", "ra_reflow", "ocar", "ora_reflow", "self_correct"
    ] = "none"
    reverse: Literal["ode", "sde"] = "ode"
    sigma: float = Field(1.0, ge=0, le=100)
    reverse_steps: int = Field(20, ge=1, le=10_000)
    refresh: int = Field(1, ge=1, le=1_000_000)
    corrector: str = Field(
        "ideal", pattern=r"^(ideal|exact|knn|reference|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$"
    )
    correct_fraction: float = Field(1.0, gt=0, le=1)
    strength: float = Field(1.0, ge=0, le=1)
    k: int = Field(5, ge=1, le=10_000)
    langevin_steps: int = Field(50, ge=1, le=100_000)
    step_size: float = Field(0.05, gt=0, le=10)
    metropolis: bool = False  # ideal: MALA, whose stationary law is the true one at any step
    level: float = Field(0.5, gt=0, le=1)  # reference: SDEdit's noise level
    knn_space: Literal["pixel", "features"] = "pixel"  # features: eval.features' extractor
    knn_workers: int = Field(0, ge=0, le=4096)  # > 0: a Ray Data pass over that many tasks

    @model_validator(mode="after")
    def _parameters_of_this_strategy(self) -> StrategyConfig:
        owners = {
            "reverse": REAL_PAIRING + ONLINE,
            "sigma": REAL_PAIRING + ONLINE,
            "reverse_steps": REAL_PAIRING + ONLINE,
            "refresh": REAL_PAIRING + ONLINE,
            **dict.fromkeys(SELF_CORRECT_KEYS, ("self_correct",)),
        }
        # set to other than their defaults (a stored config lists the defaults too)
        fields = type(self).model_fields
        extra = [
            k
            for k in sorted(self.model_fields_set - {"name"})
            if self.name not in owners[k] and getattr(self, k) != fields[k].default
        ]
        if extra:
            takers = sorted({s for k in extra for s in owners[k]})
            raise ValueError(f"{', '.join(extra)}: only {', '.join(takers)} take these")
        return self


class TrainConfig(Section):
    """Training of neural families (toy families fit in closed form and ignore it)."""

    workers: int = Field(1, ge=0, le=4096)  # 0: Ray Train's local mode, in the chain's process
    use_gpu: bool = False
    batch_size: int = Field(256, ge=1, le=10**7)
    steps: int = Field(1000, ge=1, le=10**9)
    lr: float = Field(1e-3, gt=0, le=10)
    precision: Literal["fp32", "bf16"] = "fp32"
    ema_decay: float = Field(0.999, ge=0, lt=1)
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(500, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    max_failures: int = Field(2, ge=0, le=1000)
    compile: bool = False
    # a point of the training loss curve every this many steps (the mean over them, rank 0's),
    # kept on the device and read at checkpoints only; stored as gen-k/train_loss.json
    log_every: int = Field(10, ge=1, le=10**9)
    # Ray Train checkpoints (weights, EMA, optimizer state) of how many of the latest committed
    # generations stay on storage; older ones are deleted at commit (collapse.retention). Later
    # generations read the committed model, never a checkpoint; the in-flight generation's are
    # always kept, since it resumes from them.
    keep_checkpoints: int | Literal["all"] = 0

    @field_validator("keep_checkpoints", mode="before")
    @classmethod
    def _generations_or_all(cls, value: Any) -> Any:
        if value == "all" or (type(value) is int and 0 <= value <= 10**6):
            return value
        raise ValueError(f"a count of generations (0 or more) or all, got {_short(value)}")


class SampleConfig(Section):
    """How many samples each generation draws, and where.

    `workers: 0` samples inside the chain's own worker (no start-up cost: right for toy
    families); `workers: k` runs the sampler on a Ray Data pool of k actors (GPU actors when
    `train.use_gpu`), writing shards as it goes. Either way a sample depends only on the seed
    and its row id, so the samples are the same.
    """

    n: int | None = Field(None, ge=1, le=10**9)  # None: data.n_train
    steps: int = Field(10, ge=1, le=100_000)
    workers: int = Field(0, ge=0, le=4096)
    batch_size: int = Field(4096, ge=1, le=10**7)
    # MAD's sampling bias lambda (Alemohammad et al. 2023): the noise is scaled by it, so
    # lambda < 1 trades diversity for quality; 1 samples the model as it is
    bias: float = Field(1.0, gt=0, le=1)


class EvalConfig(Section):
    """What each generation is measured by, and in which feature space.

    Every metric is computed on features of the samples against features of the held-out real
    set: the vectors themselves (`raw`), a small classifier trained on digits (`digits-cnn`), or
    clean-fid's Inception (`inception`, the features FID is defined on). `auto` picks raw for
    vectors, digits-cnn for sklearn:digits and Inception for other images. `metrics` defaults
    to DESIGN.md's vector or image set. `grid` images drawn from the same noise in every
    generation make each image generation's samples.png (0: none).
    """

    metrics: list[Metric] | None = None
    features: Literal["auto", "raw", "digits-cnn", "inception"] = "auto"
    inception_weights: str | None = Field(None, min_length=1)
    batch_size: int = Field(250, ge=1, le=10**6)
    grid: int = Field(64, ge=0, le=1024)
    # commit a generation whose metrics are NaN or infinite (recorded in the manifest's
    # `nonfinite`) instead of stopping the chain with the reason
    allow_nonfinite: bool = False


class MlflowTracking(Section):
    """MLflow: `uri` is a tracking URI (`file:./mlruns` is a local file store that works
    offline, `http://host:5000` a server); None: off."""

    uri: str | None = Field(None, min_length=1)
    experiment: str = Field("collapse", min_length=1, max_length=256)


class WandbTracking(Section):
    """Weights & Biases: `offline` writes run files under `dir` (W&B's default: ./wandb) and
    never reaches the network (`wandb sync` uploads them later); `online` logs to W&B."""

    mode: Literal["off", "offline", "online"] = "off"
    project: str = Field("collapse", min_length=1, max_length=128)
    dir: str | None = Field(None, min_length=1)


class TrackingConfig(Section):
    """Experiment trackers each committed generation is logged to (collapse.tracking): its
    metrics (step = generation), its samples.png and its training loss curve. All off by
    default; a resume may change them, since they log, not compute."""

    tensorboard: bool = False  # event files under <run>/tensorboard/
    mlflow: MlflowTracking = Field(default_factory=MlflowTracking)
    wandb: WandbTracking = Field(default_factory=WandbTracking)


class RunConfig(Section):
    name: str = Field("quickstart", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    seed: int = Field(0, ge=0, le=2**63 - 1)
    storage: str = Field("./runs", min_length=1)
    generations: int = Field(5, ge=1, le=1_000_000)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=lambda: GaussianModel(family="gaussian"))
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _resolve(self) -> RunConfig:
        strategy = self.strategy
        if (
            strategy.name == "self_correct"
            and strategy.corrector == "ideal"
            and self.data.real not in IDEAL_SOURCES
        ):
            raise ValueError(
                f"strategy.corrector: ideal needs a source with a known density "
                f"({', '.join(IDEAL_SOURCES)}), not {self.data.real}; use knn or module:function"
            )
        if (
            strategy.name == "self_correct"
            and strategy.corrector == "ideal"
            and not strategy.metropolis  # MALA's law is exact at any step
        ):
            from collapse.strategies.correction import unadjusted_step_problem

            problem = unadjusted_step_problem(self.data.real, strategy.step_size)
            if problem:
                raise ValueError(problem)
        if (
            strategy.name == "self_correct"
            and strategy.corrector == "exact"
            and self.data.real not in EXACT_SOURCES
        ):
            raise ValueError(
                f"strategy.corrector: exact draws from the true source, known only for "
                f"{', '.join(EXACT_SOURCES)}, not {self.data.real}; use knn or module:function"
            )
        if (
            strategy.name == "self_correct"
            and strategy.corrector == "reference"
            and self.model.family not in ("rectified_flow", "ddpm")
        ):
            raise ValueError(
                "strategy.corrector: reference denoises with a trained model: "
                f"model.family rectified_flow or ddpm, not {self.model.family}"
            )
        if strategy.name not in ("none", "self_correct") and self.model.family != "rectified_flow":
            raise ValueError(
                f"strategy.name: {self.strategy.name} needs model.family rectified_flow"
            )
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
        from collapse.data.mix import real_counts, schedule_problem

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


def data_kind(real: str) -> str | None:
    """ "vector" or "image" for the built-in sources; None for a parquet dataset, whose index
    says which (read when the run opens it)."""
    kind = real.partition(":")[0]
    return {"toy": "vector", "parquet": None}.get(kind, "image")


# Rows of the built-in sources' splits (train, test; sklearn:digits: the fixed 80/20 cut of its
# 1797 images, collapse.data.image_sources).
BUILTIN_ROWS = {
    "sklearn:digits": (1437, 360),
    "torchvision:cifar10": (50_000, 10_000),
    "torchvision:mnist": (60_000, 10_000),
}


def check_data_needs(config: RunConfig) -> None:
    """What the data must give that is known before any is read: rows of a built-in source,
    rows for the metrics, real rows for the strategies that pair them, images for the image
    extractors, and a user corrector that imports. ValueError (a config error) otherwise."""
    data, strategy, features = config.data, config.strategy, config.eval.features
    split_rows = BUILTIN_ROWS.get(data.real)
    if split_rows is not None:
        for key, have, split in (
            ("data.n_real", data.n_real, "training"),
            ("data.n_eval", data.n_eval, "test"),
        ):
            rows = split_rows[split == "test"]
            if have > rows:
                raise ValueError(f"{key}: {data.real} has {rows} {split} rows, got {have}")
    if config.eval.metrics is not None:
        from collapse.metrics import rows_problem

        problem = rows_problem(config.eval.metrics, data.n_eval, config.sample.n)
        if problem:
            raise ValueError(problem)
        from collapse.metrics.flow import flow_problem

        problem = flow_problem(config.eval.metrics, config.model.family)
        if problem:
            raise ValueError(problem)
    from collapse.data.mix import real_counts

    stop = max(config.generations, 2)
    if strategy.name in REAL_PAIRING + ONLINE and not (
        data.loop == "accumulate"
        or real_counts(data.loop, data.n_train, data.real_fraction, stop, config.generations).any()
    ):
        raise ValueError(
            f"strategy.name: {strategy.name} pairs real rows, but data.loop {data.loop} with "
            f"real_fraction {data.real_fraction} gives the generations after 0 none; use "
            "synthetic_augmentation or fresh_data with real_fraction > 0, or accumulate"
        )
    if data_kind(data.real) == "vector" and features in ("digits-cnn", "inception"):
        raise ValueError(f"eval.features: {features} is for images; {data.real} is vectors: raw")
    rgb = data.real == "torchvision:cifar10" or data.real.startswith("folder:")
    if features == "digits-cnn" and rgb:
        raise ValueError(
            f"eval.features: digits-cnn reads single-channel images; {data.real} is RGB: "
            "use inception or raw"
        )
    if strategy.name == "self_correct" and ":" in strategy.corrector:
        from collapse.strategies.correction import load_user_corrector

        try:
            load_user_corrector(strategy.corrector)
        except ValueError as err:
            raise ValueError(f"strategy.{err}") from None
        except Exception as err:  # noqa: BLE001 - the user's module: whatever it raises is theirs
            first = (str(err).strip().splitlines() or [""])[0]
            raise ValueError(
                f"strategy.corrector {strategy.corrector!r}: cannot import it "
                f"({type(err).__name__}: {first})"
            ) from None


def real_count(loop: str, n_train: int, real_fraction: float) -> int:
    """Real rows in each training set after generation 0: r*N rounded to the nearest row for
    the loops that mix real data in (synthetic_augmentation, fresh_data), else none."""
    if loop in ("synthetic_augmentation", "fresh_data"):
        return int(math.floor(n_train * real_fraction + 0.5))
    return 0


# --- YAML -----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.1 needs a dot; researchers don't)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


MAX_YAML_BYTES = 1 << 20  # a config is a page of keys; anything near this is not one
MAX_YAML_VALUES = 100_000  # values once aliases are expanded, as validation will see them


def _expanded_values(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for with its aliases expanded. An alias is the same node
    object as its anchor, so each node is sized once; an alias inside its own anchor (an
    infinite value) is refused."""
    if sizes.get(id(node)) == 0:
        raise UserError("an alias refers to a value that contains it (an infinite value)")
    if id(node) not in sizes:
        sizes[id(node)] = 0  # being sized
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        sizes[id(node)] = 1 + sum(_expanded_values(child, sizes) for child in children)
    return sizes[id(node)]


def parse_yaml(text: str, where: str) -> Any:
    """YAML with limits: a few hundred bytes of nested aliases expand to billions of values,
    which validation would walk for minutes (the "billion laughs"); such a file is refused
    from its parsed graph, before any value is built."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise UserError(f"{where}: {size} bytes of YAML; a config may have at most 1 MiB")
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            values = _expanded_values(node, {})
        except UserError as err:
            raise UserError(f"{where}: {err}") from None
        if values > MAX_YAML_VALUES:
            raise UserError(
                f"{where}: the YAML expands to more than {MAX_YAML_VALUES} values through its "
                "aliases (&anchor/*alias); write the values out"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{where}: invalid YAML{at}: {problem}") from None
    except RecursionError:
        raise UserError(f"{where}: the YAML is nested too deeply to be a config") from None
    finally:
        if loader is not None:
            loader.dispose()


def dump_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read config file {path}: {err}") from None
    raw = parse_yaml(text, str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the config must be a mapping of keys, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides; values are parsed as YAML so `--set seed=3` is an int."""
    out = deep_copy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or any(not p for p in parts):
            raise UserError(
                f"--set expects key=value with a dotted key (e.g. data.n_train=500), got {item!r}"
            )
        set_key(out, key.strip(), parse_yaml(value, f"--set {key}"), f"--set {key}")
    return out


def set_key(raw: dict[str, Any], key: str, value: Any, what: str) -> None:
    """Set dotted `key` in a raw config mapping, making sections as needed (in place)."""
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise UserError(f"{what}: {where} is a value, not a section")
        node = child
    node[parts[-1]] = value


def deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def validate(raw: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise UserError(describe_errors(err)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    return validate(apply_overrides(read_config_file(path), overrides or []))


# --- one-line errors ------------------------------------------------------------------------


def describe_errors(err: ValidationError) -> str:
    """All validation errors on one line: `config error: key: problem; key: problem`."""
    parts = [_describe(e) for e in err.errors(include_url=False)]
    return one_line("config error: " + "; ".join(dict.fromkeys(parts)))


def _describe(e: dict[str, Any]) -> str:
    loc = [str(p) for p in e["loc"] if not _is_union_tag(e["loc"], p)]
    kind = e["type"]
    if kind == "union_tag_invalid" or kind == "union_tag_not_found":
        loc.append("family")
        got = e.get("ctx", {}).get("tag")
        what = "missing" if got is None else f"unknown family {got!r}"
        return f"{'.'.join(loc)}: {what}; allowed: {', '.join(FAMILIES)}"
    key = ".".join(loc) or "config"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(e["loc"][:-1])
        return f"{key}: unknown key; allowed here: {', '.join(allowed)}"
    msg = e["msg"].removeprefix("Value error, ")
    if not loc:
        return msg
    if kind == "value_error" or "input" not in e:
        return f"{key}: {msg}"
    return f"{key}: {msg}, got {_short(e['input'])}"


def _is_union_tag(loc: tuple, part: Any) -> bool:
    return len(loc) > 1 and loc[0] == "model" and part in FAMILIES and part is loc[1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in loc:
        if model is RunConfig and part == "model":
            continue
        if part in FAMILIES:
            model = {
                "gaussian": GaussianModel,
                "kde": KDEModel,
                "gmm": GMMModel,
                "rectified_flow": RectifiedFlowModel,
                "ddpm": DDPMModel,
                "stable_diffusion": StableDiffusionModel,
            }[part]
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


# Keys that say where a chain runs, how it keeps its files, or how its generations yet to come
# are measured, but not what a committed generation computed: a rerun of `collapse run` or
# `collapse resume --set` may change them, for that invocation (the stored config keeps its own).
RESUME_SAFE = (
    "sample.workers",
    "sample.batch_size",
    "train.workers",
    "train.cpus_per_worker",
    "train.use_gpu",
    "train.max_failures",
    "train.keep_checkpoints",
    "strategy.knn_workers",
    "eval.*",
    "tracking.*",
)


def resume_safe(key: str, config: RunConfig) -> bool:
    """Whether `key` may change when `config`'s run continues. `eval.features` may not where
    the knn corrector finds neighbours in that feature space: it shapes what later
    generations train on."""
    strategy = config.strategy
    knn_features = strategy.corrector == "knn" and strategy.knn_space == "features"
    if key == "eval.features" and strategy.name == "self_correct" and knn_features:
        return False
    return key in RESUME_SAFE or f"{key.partition('.')[0]}.*" in RESUME_SAFE


def differing_keys(
    a: BaseModel, b: BaseModel, ignore: tuple[str, ...] = ("storage", "name")
) -> list[str]:
    """Dotted keys whose values differ between two configs (what makes a resume unsafe)."""
    flat_a, flat_b = flatten(a.model_dump(mode="json")), flatten(b.model_dump(mode="json"))
    keys = sorted(set(flat_a) | set(flat_b))
    return [k for k in keys if k.split(".")[0] not in ignore and flat_a.get(k) != flat_b.get(k)]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
