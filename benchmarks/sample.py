"""`collapse bench sample`: our distributed sampler against a plain PyTorch sampling loop of the
same model, in one run.

    collapse bench sample [--preset ddpm_cifar10] [--n 20000] [--batch-size 2048] [--steps 10]
    collapse bench sample --tiny       # seconds, on a CPU: what CI runs

Our path is what a chain runs: a Ray Data actor pool of `--workers` actors (GPU actors when
there is a GPU), each loading the generation's model from the stored `.npz`, drawing each row
from its own counter-based noise and writing parquet shards as it goes. It is timed from the
call to the last shard written, actor start-up and model load included. The plain loop is Euler
over batches of fresh noise on one device (bf16 autocast on a GPU), with the images copied to
the host. Figures: images/s, images/s x NFE (network evaluations per image = steps) and the
ratio. Goal on an H100 (issue #10): ratio >= 0.90, and at least 3x issue #10's naive figure of
565 img/s x 10 NFE.
"""

from __future__ import annotations

import io
import tempfile
import time

import numpy as np
import torch
from common import device, image_net, line, parser, plain_sample_rate, start_ray


def ours(args, net: torch.nn.Module, shape: tuple[int, int, int], on: torch.device) -> float:
    from collapse.config import validate
    from collapse.data.space import DataSpace
    from collapse.distributed.sampling_pool import sample_with_ray_data
    from collapse.engine.sampling import SampleJob
    from collapse.families.rectified_flow import FAMILY as rectified_flow
    from collapse.store.run_store import RunStore

    space = DataSpace("image", shape)
    config = validate(
        {
            "data": {"real": "parquet:unused", "n_real": args.n, "n_train": args.n},
            "model": {"family": "rectified_flow", "net": {"preset": args.preset}},
            "train": {"use_gpu": on.type == "cuda"},
            "sample": {
                "n": args.n,
                "steps": args.steps,
                "workers": args.workers,
                "batch_size": args.batch_size,
            },
            "eval": {"grid": 0},
        }
    )
    weights = {k: v.detach().float().cpu().numpy() for k, v in net.state_dict().items()}
    params = rectified_flow.to_params(weights, config.model, space, args.steps)
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    with tempfile.TemporaryDirectory() as root:
        store = RunStore(f"{root}/run")
        model = store.write_artifact(0, "model/params.npz", buffer.getvalue())
        start = time.perf_counter()
        job = SampleJob.of(config, store.uri, space, params, model, 0)
        shards, _ = sample_with_ray_data(job)
        seconds = time.perf_counter() - start
    assert sum(s["rows"] for s in shards) == args.n
    return args.n / seconds


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--preset", default=None, help="UNet preset (default ddpm_cifar10; tiny)")
    cli.add_argument("--n", type=int, default=None, help="images to draw")
    cli.add_argument("--batch-size", type=int, default=None)
    cli.add_argument("--steps", type=int, default=10, help="Euler steps (NFE per image)")
    cli.add_argument("--workers", type=int, default=1, help="sampling actors (GPUs)")
    args = cli.parse_args()
    on = device()
    tiny = args.tiny or on.type == "cpu"
    args.preset = args.preset or ("tiny" if tiny else "ddpm_cifar10")
    args.n = args.n or (64 if args.tiny else 20_000)
    args.batch_size = args.batch_size or (32 if args.tiny else 2048)
    shape = (16, 16, 3) if args.tiny else (32, 32, 3)
    model_shape = (shape[2], shape[0], shape[1])

    net = image_net(args.preset, shape, on)
    plain = plain_sample_rate(net, model_shape, args.n, args.batch_size, args.steps, on)
    start_ray()
    mine = ours(args, net, shape, on)
    print(f"bench sample on {on.type}: UNet {args.preset}, {args.n} images of {shape}")
    line("flags", f"batch {args.batch_size}, Euler {args.steps} steps, {args.workers} actor(s)")
    line("plain PyTorch loop", f"{plain:,.0f} img/s = {plain * args.steps:,.0f} img/s x NFE")
    line(
        "ours: Ray Data actor pool + shards",
        f"{mine:,.0f} img/s = {mine * args.steps:,.0f} img/s x NFE",
    )
    line("ratio ours / plain", f"{mine / plain:.2f}  (goal >= 0.90 on a GPU)")
    line("over issue #10's naive 565 img/s x 10", f"{mine * args.steps / 5650:.2f}x  (goal >= 3)")


if __name__ == "__main__":
    main()
