"""What a generation's weights are: the trainable part of a model's state.

A LoRA fine-tune freezes the pretrained base model; its checkpoints, EMA and stored weights
hold only what training changed, so every saved state goes through `trainable_state` and comes
back through `load_trainable`.
"""

from __future__ import annotations

from typing import Any

import torch


def frozen_names(model: torch.nn.Module) -> set[str]:
    """Parameters that do not train (a LoRA fine-tune's base model)."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def trainable_state(model: torch.nn.Module, frozen: set[str]) -> dict[str, torch.Tensor]:
    """What a generation changed: the state without the frozen parameters, so a LoRA
    fine-tune's checkpoints and weights hold the adapter, not a copy of the pretrained UNet."""
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def load_trainable(model: torch.nn.Module, state: dict[str, Any]) -> None:
    """Load a `trainable_state`; anything else missing or unexpected is an error."""
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = set(missing) - frozen_names(model)
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit the model: missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]}"
        )


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or compile) wrapper: what gets saved, averaged and sampled."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
