"""`train:`, `sample:`, `eval:` and `tracking:`: how a generation is trained, sampled,
measured and logged."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from collapse.config.base import Section, short
from collapse.config.metric_names import Metric


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
    # generations stay on storage; older ones are deleted at commit (collapse.store.retention).
    # Later generations read the committed model, never a checkpoint; the in-flight generation's are
    # always kept, since it resumes from them.
    keep_checkpoints: int | Literal["all"] = 0

    @field_validator("keep_checkpoints", mode="before")
    @classmethod
    def _generations_or_all(cls, value: Any) -> Any:
        if value == "all" or (type(value) is int and 0 <= value <= 10**6):
            return value
        raise ValueError(f"a count of generations (0 or more) or all, got {short(value)}")


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

    Every metric is computed on features of the samples against features of the held-out real set:
    the vectors themselves (`raw`), a small classifier trained on digits (`digits-cnn`), or
    clean-fid's Inception (`inception`, the features FID is defined on). `auto` picks raw for
    vectors, digits-cnn for sklearn:digits and Inception for other images. `metrics` defaults to the
    default set for vectors or images (docs/metrics.md). `grid` images drawn from the same noise in
    every generation make each image generation's samples.png (0: none).
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

    @property
    def environment(self) -> dict[str, str]:
        """What MLflow's client must find in the environment for `uri`: MLflow 3 refuses its
        local file store unless asked (it prefers a database), and `file:` URIs are what works
        offline with nothing installed, so collapse asks for it."""
        if self.uri is not None and (self.uri.startswith("file:") or "://" not in self.uri):
            return {"MLFLOW_ALLOW_FILE_STORE": "true"}
        return {}


class WandbTracking(Section):
    """Weights & Biases: `offline` writes run files under `dir` (W&B's default: ./wandb) and
    never reaches the network (`wandb sync` uploads them later); `online` logs to W&B."""

    mode: Literal["off", "offline", "online"] = "off"
    project: str = Field("collapse", min_length=1, max_length=128)
    dir: str | None = Field(None, min_length=1)


class TrackingConfig(Section):
    """Experiment trackers each committed generation is logged to (collapse.driver.tracking): its
    metrics (step = generation), its samples.png and its training loss curve. All off by
    default; a resume may change them, since they log, not compute."""

    tensorboard: bool = False  # event files under <run>/tensorboard/
    mlflow: MlflowTracking = Field(default_factory=MlflowTracking)
    wandb: WandbTracking = Field(default_factory=WandbTracking)
