"""A long closed-form chain: does a generation cost the same at generation 10 and 10,000?

A gaussian chain (N rows of d dims, closed-form fits: milliseconds of math per generation) is
run for many generations, fully synthetic and accumulate, and the wall time of each generation
is taken from when its record reaches the driver. Printed: the mean time per generation over
the first and the last 10% of the chain and their ratio (the goal is <= 1.2: nothing in the
engine grows with the chain), and the time to resume the finished chain (open it, check the
manifest and every artifact, find nothing to do), on local disk and on S3 (a moto server on
loopback, the run copied there).

An accumulate generation fits all samples so far (200,000 rows at generation 10,000 of N=20):
the gaussian family fits from a running total of moments that merges each generation once, so
its fit does not grow. The same fits and draws are also timed in a plain numpy loop, and the
engine's own cost per generation (ours minus plain) is printed beside it.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from collapse.families.moments import Moments

MOTO_KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def chain_config(storage: str, loop: str, generations: int, rows: int) -> dict:
    return {
        "name": f"long-{loop}",
        "storage": storage,
        "generations": generations,
        "data": {"real": "toy:gaussian", "dim": 2, "n_real": rows, "n_train": rows, "loop": loop},
        "model": {"family": "gaussian"},
        "sample": {"n": rows},
        "eval": {"metrics": ["w2", "var"]},
    }


def per_generation(raw: dict) -> list[float]:
    """Seconds each generation took, from the arrival of one record to the next."""
    from collapse.config import validate
    from collapse.driver.launch import run_chain

    arrivals: list[float] = []
    run_chain(validate(raw), on_generation=lambda record: arrivals.append(time.perf_counter()))
    return [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]


def plain_fits(loop: str, generations: int, rows: int, seed: int = 0) -> list[float]:
    """Seconds per generation of the same chain as a plain numpy loop: the gaussian family's
    fit (float64 mean and variance of the training set; for accumulate, of the real rows
    merged with a running total of every earlier generation's moments, as the engine fits
    it) and N draws, nothing stored."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((rows, 2)).astype(np.float32)
    merged, train, times = Moments(0, np.zeros(0), np.zeros(0)), real, []
    for _ in range(generations):
        start = time.perf_counter()
        moments = Moments.of(train, full=False)
        if loop == "accumulate":
            moments = Moments.of(real, full=False).merge(merged)
        mean, var = moments.mean, moments.covariance(0)
        samples = (mean + rng.standard_normal((rows, 2)) * np.sqrt(var)).astype(np.float32)
        if loop == "accumulate":
            merged = merged.merge(Moments.of(samples, full=False))
        else:
            train = samples
        times.append(time.perf_counter() - start)
    return times


def resume_seconds(raw: dict, every_size: bool | None = None) -> float:
    """A finished chain, resumed: its manifest read and checked, the latest generation's
    artifacts read and checksummed, every other artifact's size checked from one listing of
    the run (local runs, or `every_size`), nothing left to run."""
    from collapse.config import validate
    from collapse.driver.launch import run_chain

    config = validate(raw)
    start = time.perf_counter()
    outcome = run_chain(config, every_size=every_size)
    assert outcome.already_complete
    return time.perf_counter() - start


def on_s3(local_run: str, raw: dict) -> tuple[float, float]:
    """The finished run copied to a moto S3 server on loopback, then resumed there: as
    `collapse resume` does, and as `collapse resume --check-sizes` does."""
    import logging
    import os
    import socket

    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", *MOTO_KEYS)}
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", **MOTO_KEYS)
    try:
        boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(
            Bucket="bench"
        )
        _into_moto(local_run, "bench", f"runs/{raw['name']}")
        on_s3 = {**raw, "storage": "s3://bench/runs"}
        return resume_seconds(on_s3), resume_seconds(on_s3, every_size=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
        s3_backends[DEFAULT_ACCOUNT_ID]["global"].reset()  # moto's store outlives its server


def _into_moto(local_run: str, bucket: str, prefix: str) -> None:
    """Copy a run into the moto server's store in-process: uploading 50,000 small files one
    HTTP request at a time takes longer than the chain, and moto fails under parallel
    uploads. The resume that is timed still reads everything through HTTP."""
    from pathlib import Path

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    root = Path(local_run)
    for path in root.rglob("*"):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(root).as_posix()}"
            backend.put_object(bucket, key, path.read_bytes())


def long_chain(generations: int, storage: str, rows: int = 20, s3: bool = True) -> None:
    """Print the first- and last-10% time per generation and the resume times."""
    tenth = max(generations // 10, 1)
    for loop in ("fully_synthetic", "accumulate"):
        raw = chain_config(storage, loop, generations, rows)
        times = per_generation(raw)
        plain = plain_fits(loop, generations, rows)
        first, last = statistics.mean(times[:tenth]), statistics.mean(times[-tenth:])
        plain_first, plain_last = statistics.mean(plain[:tenth]), statistics.mean(plain[-tenth:])
        own_first, own_last = first - plain_first, last - plain_last
        print(f"long chain: gaussian, {loop}, {generations} generations, N={rows}, d=2")
        print(f"  {loop}, first 10%: {1000 * first:.1f} ms per generation")
        print(f"  {loop}, last 10%:  {1000 * last:.1f} ms per generation")
        print(f"  {loop}, ratio last / first: {last / first:.2f}  (goal <= 1.2)")
        print(
            f"  {loop}, the same fits in a plain numpy loop: {1000 * plain_first:.2f} -> "
            f"{1000 * plain_last:.2f} ms per generation"
        )
        print(
            f"  {loop}, the engine's own cost (ours - plain): {1000 * own_first:.1f} -> "
            f"{1000 * own_last:.1f} ms, ratio {own_last / own_first:.2f}  (goal <= 1.2)"
        )
        seconds = resume_seconds(raw)
        print(f"  {loop}, resume of the finished chain, local: {seconds:.2f} s  (goal < 5 s)")
        if s3:
            seconds, listed = on_s3(f"{storage}/{raw['name']}", raw)
            print(f"  {loop}, resume, S3 (moto): {seconds:.2f} s  (goal < 5 s)")
            print(f"  {loop}, resume --check-sizes, S3 (moto): {listed:.2f} s")
