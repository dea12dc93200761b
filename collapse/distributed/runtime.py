"""Connecting to Ray: a local cluster started on demand, or the one RAY_ADDRESS names."""

from __future__ import annotations

import logging
import os

import ray

# What a worker needs to reach the run's storage the way the driver does.
_STORAGE_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "COLLAPSE_INCEPTION_WEIGHTS",  # where the FID weights are (collapse.metrics.inception)
    "HF_HOME",  # where a Stable Diffusion run's hub models are cached, and how they are reached
    "HF_HUB_OFFLINE",
    "HF_TOKEN",
)


def ensure_ray() -> None:
    """Join the cluster at RAY_ADDRESS if set (or already joined), else start a local one."""
    if ray.is_initialized():
        return
    ray.init(
        address=os.environ.get("RAY_ADDRESS") or None,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )


def storage_settings() -> dict[str, str]:
    """The driver's storage settings (endpoint, region, credentials, the Inception weights'
    location), for workers on any node.

    They travel as call arguments and are applied with `use_storage_settings` in the worker.
    Not through a runtime env: Ray's runtime-env agent writes those, values and all, into its
    log, and neither the endpoint nor a credential may ever reach a log or a run's files.
    """
    return {k: os.environ[k] for k in _STORAGE_ENV if os.environ.get(k)}


def use_storage_settings(settings: dict[str, str]) -> None:
    os.environ.update(settings)
