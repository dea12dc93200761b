"""`model.net`: the net a trained family builds (`collapse.training.nets`), typed per net.

Vectors train an MLP, images a diffusers UNet2DModel; which one a run builds depends on the
data's kind, which a `parquet:` source tells only when its index is read. So a `net:` mapping
is validated here as the net its keys name (any UNet key or `preset`: the UNet; otherwise the
MLP), which catches a key no net takes and a value of the wrong type when the config is read,
and `net_problem` checks the net against the data's kind wherever that becomes known: at
validation for a built-in source, when the run opens its dataset for a parquet one.

A net keeps only the keys the config gives, in the order given (`as_dict`): that mapping is
what the factory takes, what config.yaml holds and what a generation's stored spec records,
so a config written before nets were typed means what it meant. An empty mapping is the
data's net with its defaults, whichever the kind.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    StrictInt,
    StrictStr,
    Tag,
    model_serializer,
    model_validator,
)

from collapse.config.base import Section

# a list, as YAML gives it, or a tuple, as Python code (and the presets) write it
Blocks = Annotated[list[StrictStr], Field(strict=False)]
Channels = Annotated[list[StrictInt], Field(strict=False)]


class _Net(Section):
    """What both nets share: the keys given, and how the data's kind is told."""

    kind: ClassVar[str]  # the data kind this net is built for
    label: ClassVar[str]  # how an error names it
    takes: ClassVar[str]  # and what it says the net takes
    _order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: Any) -> Any:
        net = handler(data)
        if isinstance(data, dict):
            net._order = tuple(data)
        return net

    @model_serializer(mode="wrap")
    def _given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        keys = [k for k in self._order if k in self.model_fields_set]
        keys += sorted(self.model_fields_set - set(keys))
        return {k: dumped[k] for k in keys}

    def as_dict(self) -> dict[str, Any]:
        """The keys the config gives, as the net factory takes them and a spec stores them."""
        return self.model_dump()


class MLPNet(_Net):
    """Vector data's net: an MLP on [x, a sinusoidal time embedding]
    (`collapse.training.nets.VectorField`, whose defaults these are)."""

    kind = "vector"
    label = "MLP"
    takes = "hidden, depth, time_embed"

    hidden: int = Field(256, ge=1)
    depth: int = Field(3, ge=1)
    time_embed: int = Field(64, ge=2, multiple_of=2)


class UNetNet(_Net):
    """Image data's net: diffusers' UNet2DModel from a preset (`collapse.training.nets.
    UNET_PRESETS`), any UNet2DModel key given here overriding the preset's; the data sets
    `in_channels`, `out_channels` and `sample_size`. The types are UNet2DModel's; a key not
    given (or given as null) reads None, and the preset's value (else UNet2DModel's default)
    applies."""

    kind = "image"
    label = "UNet"
    takes = "preset or a diffusers UNet2DModel key"

    preset: Literal["tiny", "small", "ddpm_cifar10"] = "tiny"
    center_input_sample: bool | None = None
    time_embedding_type: str | None = None
    time_embedding_dim: int | None = None
    freq_shift: int | None = None
    flip_sin_to_cos: bool | None = None
    down_block_types: Blocks | None = None
    mid_block_type: str | None = None
    up_block_types: Blocks | None = None
    block_out_channels: Channels | None = None
    layers_per_block: int | None = None
    mid_block_scale_factor: float | None = None
    downsample_padding: int | None = None
    downsample_type: str | None = None
    upsample_type: str | None = None
    dropout: float | None = None
    act_fn: str | None = None
    attention_head_dim: int | None = None
    norm_num_groups: int | None = None
    attn_norm_num_groups: int | None = None
    norm_eps: float | None = None
    resnet_time_scale_shift: str | None = None
    add_attention: bool | None = None
    class_embed_type: str | None = None
    num_class_embeds: int | None = None
    num_train_timesteps: int | None = None


NETS: dict[str, type[_Net]] = {"mlp": MLPNet, "unet": UNetNet}
UNET_KEYS = frozenset(UNetNet.model_fields)


def _which(value: Any) -> str | None:
    """The net a `net:` value names: a UNet key makes it the UNet, anything else the MLP."""
    if isinstance(value, _Net):
        return next(tag for tag, net in NETS.items() if isinstance(value, net))
    if not isinstance(value, dict):
        return None
    return "unet" if UNET_KEYS.intersection(value) else "mlp"


NetConfig = Annotated[
    Annotated[MLPNet, Tag("mlp")] | Annotated[UNetNet, Tag("unet")],
    Discriminator(_which, custom_error_type="net_type", custom_error_message="a mapping of keys"),
]


def net_problem(net: MLPNet | UNetNet, kind: str | None) -> str | None:
    """Why `net` cannot be built for data of `kind` (None: it can, or the kind is not known
    yet): it gives a key of the other kind's net."""
    if kind is None or net.kind == kind or not net.model_fields_set:
        return None
    key = next(iter(net.as_dict()))
    wanted = next(n for n in NETS.values() if n.kind == kind)
    return (
        f"model.net.{key}: a key of the {net.label}, which {net.kind} data trains; {kind} data "
        f"trains the {wanted.label}: {wanted.takes}"
    )


def net_keys() -> str:
    """Every net's keys, as an error about a key no net takes lists them."""
    return "; ".join(
        f"{', '.join(net.model_fields)} (the {net.label}, {net.kind} data)" for net in NETS.values()
    )
