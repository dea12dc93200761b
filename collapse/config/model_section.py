"""`model:`: one section per model family, told apart by `family`, and `FAMILIES`, the
registry of families: the one list of their names, config sections and code."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, Union

from pydantic import Field, field_validator

from collapse.config.base import Section
from collapse.config.net_section import MLPNet, NetConfig, net_problem


class ModelSection(Section):
    """What every `model:` section has: the family it configures (each section's `family` is
    a Literal of its family's name, which tells the sections of the `model:` union apart)."""

    family: str

    @property
    def warm_start(self) -> bool:
        """Whether each generation after 0 starts from the last one's weights (`init`)."""
        return False


class GaussianModel(ModelSection):
    """Fit a Gaussian and sample from it (Shumailov et al. 2024)."""

    family: Literal["gaussian"]
    covariance: Literal["diag", "full"] = "diag"
    estimator: Literal["mle", "unbiased"] = "mle"


class KDEModel(ModelSection):
    """Gaussian kernel density estimate; `bandwidth` is a number (in data units) or a rule."""

    family: Literal["kde"]
    bandwidth: Annotated[float, Field(gt=0)] | Literal["scott", "silverman"] = "scott"


class NetModel(ModelSection):
    """A family that trains collapse's own net on the data: `net` is the net's keys
    (`collapse.config.net_section`: vectors an MLP of hidden, depth, time_embed; images a UNet from
    a preset tiny|small|ddpm_cifar10 plus any diffusers UNet2DModel key); `init: previous`
    warm-starts each generation from the last, `scratch` starts fresh."""

    family: str
    net: NetConfig = Field(default_factory=MLPNet)
    init: Literal["previous", "scratch"] = "previous"

    @property
    def warm_start(self) -> bool:
        return self.init == "previous"


class RectifiedFlowModel(NetModel):
    """Rectified flow (Liu et al. 2022) trained on Ray Train. A velocity net (`net`, `init`:
    see `NetModel`), sampled by Euler steps."""

    family: Literal["rectified_flow"]


class DDPMModel(NetModel):
    """DDPM (Ho et al. 2020) trained on Ray Train like rectified flow: the same `net` and
    `init`, a diffusers noise schedule (`timesteps`, `beta_schedule`), and DDIM
    (deterministic) or ancestral DDPM sampling over `sample.steps` steps."""

    family: Literal["ddpm"]
    timesteps: int = Field(1000, ge=2, le=100_000)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    sampler: Literal["ddim", "ddpm"] = "ddim"


class StableDiffusionModel(ModelSection):
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

    @property
    def warm_start(self) -> bool:
        return self.init == "previous"

    @field_validator("pretrained")
    @classmethod
    def _absolute(cls, value: str) -> str:
        """A local directory is stored as an absolute path: workers run elsewhere."""
        path = os.path.expanduser(value)
        return os.path.abspath(path) if os.path.isdir(path) else value


class GMMModel(ModelSection):
    """Gaussian mixture fitted by EM (scikit-learn)."""

    family: Literal["gmm"]
    components: int = Field(8, ge=1, le=10_000)
    covariance: Literal["full", "diag", "spherical", "tied"] = "full"
    max_iter: int = Field(200, ge=1, le=100_000)


@dataclass(frozen=True)
class FamilyRegistration:
    """A model family: its `model:` section (whose `family` literal is the family's name) and
    the module whose `FAMILY` object implements it (`collapse.families.protocol`), imported on
    first use so that reading a config loads no family's code. `denoises`: the family
    satisfies `DenoisingFamily` (SDEdit), so the `reference` corrector can use its model."""

    config: type[ModelSection]
    module: str
    denoises: bool = False

    @property
    def name(self) -> str:
        return typing.get_args(self.config.model_fields["family"].annotation)[0]


def _registry(*registrations: FamilyRegistration) -> dict[str, FamilyRegistration]:
    return {r.name: r for r in registrations}


FAMILIES = _registry(
    FamilyRegistration(GaussianModel, "collapse.families.gaussian"),
    FamilyRegistration(KDEModel, "collapse.families.kde"),
    FamilyRegistration(GMMModel, "collapse.families.gmm"),
    FamilyRegistration(RectifiedFlowModel, "collapse.families.rectified_flow", denoises=True),
    FamilyRegistration(DDPMModel, "collapse.families.ddpm", denoises=True),
    FamilyRegistration(StableDiffusionModel, "collapse.families.stable_diffusion"),
)

if TYPE_CHECKING:
    # What code may rely on: a section's `family`; the rest after narrowing to its class.
    ModelConfig = ModelSection
else:  # what pydantic validates: the registered sections, told apart by `family`
    ModelConfig = Annotated[
        Union[tuple(r.config for r in FAMILIES.values())],  # noqa: UP007 - from the registry
        Field(discriminator="family"),
    ]


def model_problem(model: ModelSection, kind: str | None) -> str | None:
    """Why the `model:` section cannot train on data of `kind` (None: it can, or the kind is
    not known yet): a net of the other kind's keys. Checked where the kind becomes known: at
    validation for a built-in source or a folder, when the run opens a parquet dataset."""
    return net_problem(model.net, kind) if isinstance(model, NetModel) else None
