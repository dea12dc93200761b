"""Zhu et al. (arXiv 2412.08175) on a toy: reflow on its own pairs drifts away from the data,
while pairing real rows (RCA Reflow) or building pairs online (OCAR) keeps it close.

Seeded and small: 5 generations on toy:mog8, the velocity net trained in Ray Train's local
mode (`train.workers: 0`), about a minute for the three chains.
"""

from collapse.config import validate
from tests.helpers import run_in_process


def chain(tmp_path, name, strategy, loop, real_fraction):
    config = validate(
        {
            "name": name,
            "storage": str(tmp_path),
            "generations": 5,
            "data": {
                "real": "toy:mog8",
                "n_real": 1024,
                "n_train": 1024,
                "n_eval": 1024,
                "loop": loop,
                "real_fraction": real_fraction,
            },
            "model": {"family": "rectified_flow", "net": {"hidden": 64, "depth": 2}},
            "strategy": strategy,
            "train": {"workers": 0, "batch_size": 256, "steps": 300, "lr": 3e-3, "ema_decay": 0.99},
            "sample": {"steps": 10},
            "eval": {"metrics": ["w2"]},
        }
    )
    return [r["metrics"]["w2"] for r in run_in_process(config)]


def test_reflow_drifts_while_real_pairs_and_online_pairs_stay_close(ray_cluster, tmp_path):
    reflow = chain(tmp_path, "reflow", {"name": "reflow"}, "fully_synthetic", 0.0)
    rca = chain(
        tmp_path, "rca", {"name": "rca_reflow", "reverse_steps": 10}, "synthetic_augmentation", 0.5
    )
    ocar = chain(
        tmp_path, "ocar", {"name": "ocar", "reverse_steps": 10}, "synthetic_augmentation", 0.5
    )
    assert reflow[-1] > reflow[0], f"reflow should drift away from the data: {reflow}"
    for mitigated in (rca, ocar):
        assert mitigated[-1] < mitigated[0] + 0.02, (
            f"should stay close to generation 0: {mitigated}"
        )
        assert mitigated[-1] - mitigated[0] < reflow[-1] - reflow[0]
        assert mitigated[-1] < 0.75 * reflow[-1]
