"""A generation's training settings and the state a resumed generation continues from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from collapse.training.ema import EMA
from collapse.training.weights import load_trainable, trainable_state, unwrap


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    precision: str = "fp32"  # "fp32" | "bf16"
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    log_every: int = 10  # a point of the loss curve: the mean over this many steps


@dataclass
class TrainState:
    """Everything a resumed generation needs to continue exactly where it stopped."""

    model: torch.nn.Module
    ema: EMA
    optimizer: torch.optim.Optimizer
    step: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss) points
    window: tuple[float, int] = (0.0, 0)  # loss sum and steps since the curve's last point

    @classmethod
    def create(
        cls, model: torch.nn.Module, settings: TrainSettings, device: torch.device
    ) -> TrainState:
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=settings.lr,
            weight_decay=0.0,
            fused=device.type == "cuda",
        )
        return cls(model, EMA(unwrap(model), settings.ema_decay), optimizer)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": trainable_state(unwrap(self.model), self.ema.frozen),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "curve": list(self.curve),
            "window": self.window,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_trainable(unwrap(self.model), state["model"])
        load_trainable(self.ema.module, state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.curve = [(int(s), float(v)) for s, v in state.get("curve", [])]  # older: none
        pending, steps = state.get("window", (0.0, 0))
        self.window = (float(pending), int(steps))
