"""Rectified flow (Liu et al. 2022) as a chain family: a velocity net trained on Ray Train.

Unlike the closed-form families it has no `fit`: the chain trains it with
`collapse.distributed.train` over the generation's Ray Data training set. Its parameters are
the EMA weights plus a `spec` (what net, what data space, how many Euler steps), so a sampler
anywhere, a Ray Data actor on another node included, rebuilds the same model from the stored
`.npz` alone. A sample is the Euler ODE solution from its noise row (every sampler
is a function of its noise: `collapse.data.noise`), so reflow pairs are (noise, sample) as stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from collapse.config.metric_names import NFE_STEPS, nfe_names
from collapse.config.model_section import RectifiedFlowModel
from collapse.data.space import DataSpace
from collapse.families import trained
from collapse.families.export import (
    EXPORT_DIR,
    SAMPLING,
    VECTOR_FORMAT,
    as_json,
    image_unet,
    saved,
    under,
    vector_net,
)
from collapse.families.protocol import FlowFamily, Params
from collapse.families.rectified_flow.interpolant import flow_matching_objective
from collapse.families.rectified_flow.samplers import euler_forward, euler_reverse, reverse_sde
from collapse.training.loop import Objective


class RectifiedFlow(trained.NetFamily, FlowFamily):
    name = "rectified_flow"

    def objective(self, config: RectifiedFlowModel, space: DataSpace) -> Objective:
        return flow_matching_objective

    def to_params(
        self,
        weights: dict[str, np.ndarray],
        config: RectifiedFlowModel,
        space: DataSpace,
        steps: int,
        captions: Sequence[str] | None = None,
    ) -> Params:
        net = config.net.as_dict()
        spec = {"kind": space.kind, "shape": list(space.shape), "net": net, "steps": steps}
        return trained.pack(weights, spec)

    def export(self, params: Params) -> tuple[str, dict[str, bytes]]:
        """The MLP as safetensors, or the UNet with diffusers' flow-matching Euler scheduler."""
        spec = trained.spec(params)
        sampling = _flow_sampling(spec)
        if spec["kind"] == "vector":
            return VECTOR_FORMAT, vector_net("rectified_flow", params, sampling)
        from diffusers import FlowMatchEulerDiscreteScheduler

        unet = image_unet(params)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=999, invert_sigmas=True)
        written = {
            **under("unet", saved(lambda d: unet.save_pretrained(d, safe_serialization=True))),
            **under("scheduler", saved(scheduler.save_pretrained)),
            SAMPLING: as_json(sampling),
        }
        return "diffusers:UNet2DModel+FlowMatchEulerDiscreteScheduler", under(EXPORT_DIR, written)

    def noise_dim(self, params: Params) -> int:
        return int(np.prod(trained.spec(params)["shape"]))

    def sample(self, params: Params, noise: np.ndarray, steps: int | None = None) -> np.ndarray:
        """Euler-integrate each noise row from t=0 to 1 in `steps` steps (default: the
        generation's `sample.steps`); images as HWC-flat vectors in [-1, 1].

        Image noise rows are read as CHW (the layout the net and the stored reflow pairs use)."""
        device = trained.device()
        z = trained.model_noise(params, noise, device)
        with trained.inference(device):
            x = euler_forward(
                trained.net(params, device), z, steps or trained.spec(params)["steps"]
            )
        return trained.data_rows(params, x)

    def reverse(
        self, params: Params, x: np.ndarray, sde_sigma: float | None, steps: int, seed: int
    ) -> np.ndarray:
        """The noise this model pairs with real rows x (HWC-flat vectors in [-1, 1]): the
        reverse ODE, or with `sde_sigma` the reverse SDE (Zhu et al.'s real-data pairing), as
        CHW-flat noise rows like those `sample` reads. The SDE's noise is seeded, so pairs
        reproduce."""
        device = trained.device()
        x1 = trained.model_input(params, x, device)
        if sde_sigma is None:
            sampler = euler_reverse
        else:
            sampler = reverse_sde(sde_sigma, torch.Generator(device=device).manual_seed(seed))
        with trained.inference(device):
            z = sampler(trained.net(params, device), x1, steps)
        return z.reshape(len(z), -1).float().cpu().numpy()

    def sdedit(self, params: Params, x: np.ndarray, level: float, noise: np.ndarray) -> np.ndarray:
        """SDEdit on the flow: x at time 1 - level of the interpolant with `noise`, then Euler
        to 1 (HWC-flat rows in and out, noise rows CHW as `sample` reads them)."""
        device = trained.device()
        x1, z = trained.model_input(params, x, device), trained.model_noise(params, noise, device)
        start = 1.0 - level
        steps = max(1, round(level * trained.spec(params)["steps"]))
        with trained.inference(device):
            net = trained.net(params, device)
            out = euler_forward(net, (1 - start) * z + start * x1, steps, start=start)
        return trained.data_rows(params, out)

    def flow_metrics(
        self,
        params: Params,
        names: Sequence[str],
        noise: np.ndarray,
        real: np.ndarray,
        headline: str | None,
        score: Callable[[np.ndarray], float],
    ) -> dict[str, float]:
        """The flow metrics `names` asks for (`diagnostics`) of this generation's
        model: straightness on the Euler trajectories from `noise` (the first noise rows of its
        own samples), the `headline` metric (`score`) of samples from the same noise at each
        NFE, and the inversion of held-out `real` rows by the reverse ODE, all at the
        generation's `sample.steps` where a step count is not the point."""
        from collapse.families.rectified_flow import diagnostics

        found: dict[str, float] = {}
        steps = trained.spec(params)["steps"]
        if "straightness" in names:
            device = trained.device()
            z = trained.model_noise(params, noise, device)
            with trained.inference(device):
                found["straightness"] = diagnostics.straightness(
                    trained.net(params, device), z, steps
                )
        if "nfe" in names:
            assert headline is not None, "config validation (flow_problem) asks for one"
            for name, k in zip(nfe_names(headline), NFE_STEPS, strict=True):
                found[name] = score(self.sample(params, noise, k))
        if "inversion" in names:
            found.update(diagnostics.inversion_stats(self.reverse(params, real, None, steps, 0)))
        return found


def _flow_sampling(spec: dict[str, Any]) -> dict[str, Any]:
    """How the chain samples a rectified flow: Euler on a uniform grid."""
    steps = int(spec["steps"])
    return {
        "sampler": "euler",
        "num_inference_steps": steps,
        "t": [i / steps for i in range(steps)],  # each step x += v(x, t) / steps
        "sigmas": [1.0 - i / steps for i in range(steps)],  # the scheduler's, inverted
    }


FAMILY = RectifiedFlow()
