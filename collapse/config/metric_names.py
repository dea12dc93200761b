"""The metric names a config may ask for (`eval.metrics`), the feature spaces they are measured
in (`eval.features`), and the names a generation records for them.

Names are the contract of metrics.json, the manifest and `collapse report` (docs/metrics.md);
what computes each is `collapse.metrics` (on samples) or, for the flow metrics, the rectified
flow family's diagnostics (on its model). Only names and the rules between them live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Metric = Literal[
    "w2",
    "mmd",
    "mean_err",
    "var",
    "precision",
    "recall",
    "density",
    "coverage",
    "fid",
    "kid",
    "straightness",
    "nfe",
    "inversion",
]
VECTOR_METRICS: tuple[Metric, ...] = ("w2", "mmd", "mean_err", "var", "precision", "recall")
IMAGE_METRICS: tuple[Metric, ...] = ("fid", "kid", "precision", "recall", "density", "coverage")
# measured on a rectified flow's model, not on its samples
# (collapse.families.rectified_flow.diagnostics)
FLOW_METRICS: tuple[Metric, ...] = ("straightness", "nfe", "inversion")
METRICS: tuple[Metric, ...] = (*VECTOR_METRICS, "density", "coverage", "fid", "kid", *FLOW_METRICS)
FEATURES = ("auto", "raw", "digits-cnn", "inception")
NFE_STEPS = (1, 2, 4, 8)  # the Euler step counts of the `nfe` sweep
FLOW_ROWS = 1024  # the most rows each flow metric reads per generation
INVERSION = ("inversion_norm", "inversion_cov", "inversion_w2")


def requested(metrics: Sequence[str] | None) -> list[str]:
    """The flow metrics among `eval.metrics`."""
    return [name for name in metrics or [] if name in FLOW_METRICS]


def headline(metrics: Sequence[str] | None) -> str | None:
    """The metric the NFE sweep repeats: the first of `eval.metrics` measured on samples."""
    return next((name for name in metrics or [] if name not in FLOW_METRICS), None)


def nfe_names(metric: str) -> list[str]:
    return [f"{metric}_nfe{k}" for k in NFE_STEPS]


def recorded_names(metrics: Sequence[str]) -> list[str]:
    """The names a generation records for `eval.metrics`: `nfe` becomes each sample metric's
    `<metric>_nfe<k>`, `inversion` its three numbers."""
    found = []
    for name in metrics:
        if name == "nfe":
            found += [n for m in metrics if m not in FLOW_METRICS for n in nfe_names(m)]
        elif name == "inversion":
            found += INVERSION
        else:
            found.append(name)
    return found


def flow_problem(metrics: Sequence[str] | None, family: str) -> str | None:
    """Why `eval.metrics` cannot have its flow metrics (one line), or None."""
    names = requested(metrics)
    if not names:
        return None
    if family != "rectified_flow":
        return (
            f"eval.metrics: {', '.join(names)}: metrics of a rectified flow's ODE, but "
            f"model.family is {family}"
        )
    if "nfe" in names and headline(metrics) is None:
        return (
            "eval.metrics: nfe repeats the first sample metric of eval.metrics at 1, 2, 4 and "
            "8 Euler steps; list one before it, e.g. [w2, nfe]"
        )
    return None
