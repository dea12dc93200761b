"""`collapse bench train`: a rectified-flow generation's training on our Ray Train path
against the plain PyTorch loop of the same model, batch and flags, measured in one run.

    collapse bench train [--preset ddpm_cifar10] [--batch-size 256] [--steps 200] [--compile]
    collapse bench train --tiny        # seconds, on a CPU: what CI runs

Our path: 1 Ray Train worker (a GPU worker when there is one), fed by the training feed from parquet
shards of random 32x32x3 images through the chain's own `training_dataset`, running the
chain's training loop (EMA, grad clipping, checkpoints to storage). Its rate is the steady
one the loop reports (`rows_per_s`, from its first checkpoint to its last, checkpoint writes
included: one every steps/2); the generation's wall time is printed beside it. The plain
loop (benchmarks/common.py) has the data on the device already. MFU is images/s x
forward+backward FLOPs per image (torch's FLOP counter) over a bf16 matmul measured in this
run.
Goal on an H100 (issue #10): ratio >= 0.95 and MFU >= 0.30 at batch >= 256.
"""

from __future__ import annotations

import tempfile
import time

import torch
from common import (
    device,
    image_net,
    line,
    matmul_peak,
    parser,
    plain_train_rate,
    start_ray,
    train_flops_per_image,
    write_images,
)


def ray_train_rate(args, shape: tuple[int, int, int], on: torch.device) -> tuple[float, float]:
    """(steady images/s, wall seconds of the whole generation) on our path."""
    from collapse.config import validate
    from collapse.data.mix import plan_mix
    from collapse.data.space import DataSpace
    from collapse.distributed.train import train_generation
    from collapse.distributed.training_set import training_dataset
    from collapse.store.storage import Storage

    rows = min(args.rows, args.batch_size * args.steps)
    with tempfile.TemporaryDirectory() as root:
        index = write_images(f"{root}/data", rows, shape, max(1, rows // 8))
        space = DataSpace.of_index(index)
        config = validate(
            {
                "data": {"real": f"parquet:{root}/data", "n_real": rows, "n_train": rows},
                "model": {"family": "rectified_flow", "net": {"preset": args.preset}},
                "train": {
                    "workers": 1,
                    "use_gpu": on.type == "cuda",
                    "cpus_per_worker": 0.5 if on.type == "cpu" else 1,
                    "batch_size": args.batch_size,
                    "steps": args.steps,
                    "precision": args.precision,
                    "compile": args.compile,
                    "checkpoint_every": max(1, args.steps // 2),
                },
            }
        )
        plan = plan_mix("fully_synthetic", 0, rows, 0.0, rows, [])
        start = time.perf_counter()
        dataset = training_dataset(plan, (Storage(f"{root}/data"), index["shards"]), {}, space, 0)
        _, report = train_generation(config, Storage(f"{root}/run"), 0, dataset, space, None)
        return report["rows_per_s"], time.perf_counter() - start


def main() -> None:
    cli = parser(__doc__)
    cli.add_argument("--preset", default=None, help="UNet preset (default ddpm_cifar10; tiny)")
    cli.add_argument("--batch-size", type=int, default=None)
    cli.add_argument("--steps", type=int, default=None)
    cli.add_argument("--rows", type=int, default=20_000, help="images in the shards")
    cli.add_argument("--precision", choices=["bf16", "fp32"], default=None)
    cli.add_argument("--compile", action="store_true")
    args = cli.parse_args()
    on = device()
    tiny = args.tiny or on.type == "cpu"
    args.preset = args.preset or ("tiny" if tiny else "ddpm_cifar10")
    args.batch_size = args.batch_size or (8 if args.tiny else 256)
    args.steps = args.steps or (8 if args.tiny else 300)
    args.precision = args.precision or ("bf16" if on.type == "cuda" else "fp32")
    shape = (16, 16, 3) if args.tiny else (32, 32, 3)
    model_shape = (shape[2], shape[0], shape[1])

    peak = matmul_peak(on)
    net = image_net(args.preset, shape, on)
    flops = train_flops_per_image(net, model_shape, on)
    bf16 = args.precision == "bf16"
    plain = plain_train_rate(net, model_shape, args.batch_size, args.steps, on, bf16, args.compile)
    start_ray()
    ours, wall = ray_train_rate(args, shape, on)

    params = sum(p.numel() for p in net.parameters())
    print(
        f"bench train on {on.type} ({torch.cuda.get_device_name() if on.type == 'cuda' else 'CPU'})"
    )
    line("model", f"UNet {args.preset}, {params / 1e6:.1f}M parameters, {shape} images")
    line("flags", f"batch {args.batch_size}, {args.precision}, compile {args.compile}")
    line("forward+backward per image", f"{flops / 1e9:.2f} GFLOP")
    line("matmul peak measured", f"{peak / 1e12:.1f} TFLOP/s")
    line("plain PyTorch loop", f"{plain:,.0f} img/s, MFU {plain * flops / peak:.3f}")
    line("ours: Ray Train + Ray Data (steady)", f"{ours:,.0f} img/s, MFU {ours * flops / peak:.3f}")
    line("ours: the generation's wall time", f"{wall:.1f} s for {args.steps} steps")
    line("ratio ours / plain", f"{ours / plain:.2f}  (goal >= 0.95 on a GPU)")


if __name__ == "__main__":
    main()
