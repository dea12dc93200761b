"""A long closed-form chain: does a generation cost the same at generation 10 and 10,000?

A gaussian chain (N rows of d dims, closed-form fits: milliseconds of math per generation) is
run for many generations, fully synthetic and accumulate, and the wall time of each generation
is taken from when its record reaches the driver. Printed: the mean time per generation over
the first and the last 10% of the chain and their ratio (the goal is <= 1.2: nothing in the
engine grows with the chain), and the time to resume the finished chain (open it, check the
manifest and every artifact, find nothing to do), on local disk and on S3 (a moto server on
loopback, the run copied there).
"""

from __future__ import annotations

import statistics
import time

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
    from collapse.chain import run_chain
    from collapse.config import validate

    arrivals: list[float] = []
    run_chain(validate(raw), on_generation=lambda record: arrivals.append(time.perf_counter()))
    return [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]


def resume_seconds(raw: dict) -> float:
    """A finished chain, resumed: its manifest read and checked, its artifacts listed, the
    latest generation's checksums read, nothing left to run."""
    from collapse.chain import run_chain
    from collapse.config import validate

    config = validate(raw)
    start = time.perf_counter()
    outcome = run_chain(config)
    assert outcome.already_complete
    return time.perf_counter() - start


def on_s3(local_run: str, raw: dict) -> float:
    """The finished run copied to a moto S3 server on loopback, then resumed there."""
    import logging
    import os
    import socket

    import boto3
    import pyarrow.fs as pafs
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
        from collapse.storage import s3_filesystem

        pafs.copy_files(
            local_run,
            f"bench/runs/{raw['name']}",
            destination_filesystem=s3_filesystem("s3://bench"),
            use_threads=False,  # moto's server fails under concurrent uploads
        )
        return resume_seconds({**raw, "storage": "s3://bench/runs"})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def long_chain(generations: int, storage: str, rows: int = 20, s3: bool = True) -> None:
    """Print the first- and last-10% time per generation and the resume times."""
    tenth = max(generations // 10, 1)
    for loop in ("fully_synthetic", "accumulate"):
        raw = chain_config(storage, loop, generations, rows)
        times = per_generation(raw)
        first, last = statistics.mean(times[:tenth]), statistics.mean(times[-tenth:])
        print(f"long chain: gaussian, {loop}, {generations} generations, N={rows}, d=2")
        print(f"  {loop}, first 10%: {1000 * first:.1f} ms per generation")
        print(f"  {loop}, last 10%:  {1000 * last:.1f} ms per generation")
        print(f"  {loop}, ratio last / first: {last / first:.2f}  (goal <= 1.2)")
        seconds = resume_seconds(raw)
        print(f"  {loop}, resume of the finished chain, local: {seconds:.2f} s  (goal < 5 s)")
        if s3:
            seconds = on_s3(f"{storage}/{raw['name']}", raw)
            print(f"  {loop}, resume, S3 (moto): {seconds:.2f} s  (goal < 5 s)")
