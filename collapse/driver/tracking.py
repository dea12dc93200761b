"""Experiment trackers: each committed generation logged where researchers look at curves.

`tracking:` in a chain's config (all off by default) names the backends:

- `tensorboard: true`: event files under `<run>/tensorboard/` (written to a local folder and
  copied there after each generation when the run is on S3).
- `mlflow: {uri, experiment}`: one MLflow run per chain, found again by its tag
  `collapse.run_uri` when the chain is resumed; its parameters are the flattened config.
- `wandb: {mode: offline|online, project, dir}`: one W&B run per chain, its id derived from
  the run's URI, so a resumed chain logs to the same run. Offline it never reaches the
  network: no login, no API key (`wandb sync` uploads the files later).

For each committed generation every backend gets its metrics at step = generation, its
samples.png, and (trained families) the training loss curve at step = generation x
`train.steps` + the step within the generation, so the curves of a chain's generations follow
each other on one axis. The driver logs after each commit; a generation committed just before a
driver died may be missing from the trackers (its files are in the run all the same). A backend
is imported only when it is asked for. Sweeps log through Ray Tune's own callbacks for the same
backends (`collapse.distributed.tune_trackers`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from collapse.config import ChainConfig, flatten
from collapse.errors import UserError
from collapse.store.layout import generation_dir
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore

TENSORBOARD_DIR = "tensorboard"
RUN_TAG = "collapse.run_uri"  # the MLflow tag that finds a chain's run again on resume


@contextlib.contextmanager
def trackers(config: ChainConfig, store: RunStore) -> Iterator[Trackers]:
    """The chain's trackers, open for its generations and closed after them (nothing is
    imported or opened when `tracking:` is off)."""
    opened = Trackers(config, store)
    try:
        yield opened
    finally:
        opened.close()


class Trackers:
    """The backends `tracking:` names. One that cannot be opened stops the chain before its
    first generation, in one line; one that fails to log a generation later is reported on
    stderr and skipped, since the run's own files hold everything it would have shown."""

    def __init__(self, config: ChainConfig, store: RunStore):
        self.store, self.steps = store, config.train.steps
        tracking = config.tracking
        wanted = {
            "tensorboard": (lambda: _TensorBoard(store)) if tracking.tensorboard else None,
            "mlflow": (lambda: _MLflow(config, store)) if tracking.mlflow.uri else None,
            "wandb": (lambda: _WandB(config, store)) if tracking.wandb.mode != "off" else None,
        }
        self.backends: dict[str, Any] = {}
        for name, open_backend in wanted.items():
            if open_backend is None:
                continue
            try:
                self.backends[name] = open_backend()
            except Exception as err:
                self.close()
                if isinstance(err, UserError):
                    raise
                raise UserError(f"tracking.{name}: cannot open it: {_first_line(err)}") from None

    def log(self, record: GenerationRecord) -> None:
        """One committed generation: its metrics, samples.png and loss curve, to every backend."""
        if not self.backends:
            return
        generation = record["generation"]
        metrics = {k: float(v) for k, v in record["metrics"].items() if v is not None}
        picture = self.store.read_artifact(record["samples_png"])
        curve = []
        if "loss_curve" in record:
            document = json.loads(self.store.read_artifact(record["loss_curve"]))
            offset = generation * self.steps
            curve = [
                (offset + s, v) for s, v in zip(document["step"], document["loss"], strict=True)
            ]
        for name, backend in self.backends.items():
            try:
                backend.log(generation, metrics, picture, curve)
            except Exception as err:  # an outage of the tracker must not stop the chain
                print(
                    f"collapse: tracking.{name}: generation {generation} not logged "
                    f"({type(err).__name__}: {_first_line(err)}); the run's files have it",
                    file=sys.stderr,
                )

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()


def _image(png: bytes) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


class _TensorBoard:
    """tensorboardX's writer; scalars `metrics/<name>` and `train/loss`, image `samples`."""

    def __init__(self, store: RunStore):
        from tensorboardX import SummaryWriter

        self.storage = store.storage
        if self.storage.local:
            self.folder = self.storage.path(TENSORBOARD_DIR)
        else:  # event files are appended to: write here, copy to the run after each generation
            self.folder = tempfile.mkdtemp(prefix="collapse-tensorboard-")
        self.writer = SummaryWriter(self.folder)

    def log(self, generation: int, metrics: dict, picture: bytes, curve: list) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(f"metrics/{name}", value, generation)
        self.writer.add_image("samples", _image(picture), generation, dataformats="HWC")
        for step, loss in curve:
            self.writer.add_scalar("train/loss", loss, step)
        self.writer.flush()
        self._copy()

    def _copy(self) -> None:
        if self.storage.local:
            return
        for name in os.listdir(self.folder):
            with open(os.path.join(self.folder, name), "rb") as f:
                self.storage.write_bytes(f"{TENSORBOARD_DIR}/{name}", f.read())

    def close(self) -> None:
        self.writer.close()
        self._copy()
        if not self.storage.local:
            shutil.rmtree(self.folder, ignore_errors=True)


class _MLflow:
    def __init__(self, config: ChainConfig, store: RunStore):
        import mlflow
        from mlflow.entities import Param

        settings = config.tracking.mlflow
        for key, value in settings.environment.items():
            os.environ.setdefault(key, value)
        self.client = mlflow.MlflowClient(settings.uri)
        try:
            found = self.client.get_experiment_by_name(settings.experiment)
            experiment = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(settings.experiment)
            )
            quoted = store.uri.replace("'", "\\'")
            runs = self.client.search_runs(
                [experiment], filter_string=f"tags.`{RUN_TAG}` = '{quoted}'", max_results=1
            )
        except mlflow.exceptions.MlflowException as err:
            raise UserError(f"tracking.mlflow.uri {settings.uri}: {_first_line(err)}") from None
        if runs:
            self.run_id = runs[0].info.run_id
        else:
            self.run_id = self.client.create_run(
                experiment, run_name=config.name, tags={RUN_TAG: store.uri}
            ).info.run_id
            params = flatten(config.model_dump(mode="json"))
            self.client.log_batch(
                self.run_id, params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
            )

    def log(self, generation: int, metrics: dict, picture: bytes, curve: list) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        logged = [Metric(k, v, now, generation) for k, v in metrics.items() if math.isfinite(v)]
        logged += [Metric("train_loss", v, now, s) for s, v in curve]
        for first in range(0, len(logged), 1000):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, metrics=logged[first : first + 1000])
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"{generation_dir(generation)}.png")
            with open(path, "wb") as f:
                f.write(picture)
            self.client.log_artifact(self.run_id, path, artifact_path="samples")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class _WandB:
    def __init__(self, config: ChainConfig, store: RunStore):
        import wandb

        settings = config.tracking.wandb
        assert settings.mode != "off", "a W&B tracker is opened only where wandb.mode is not off"
        directory = os.path.expanduser(settings.dir) if settings.dir else None
        if directory:
            os.makedirs(directory, exist_ok=True)
        if settings.mode == "offline":
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")  # no crash reports either
        self.run = wandb.init(
            project=settings.project,
            name=config.name,
            id=hashlib.sha256(store.uri.encode()).hexdigest()[:16],
            resume="allow",
            dir=directory,
            mode=settings.mode,
            config=config.model_dump(mode="json"),
            reinit="create_new",
            allow_val_change=True,  # an extended chain logs a raised `generations`
            settings=wandb.Settings(
                console="off", x_disable_stats=True, x_disable_machine_info=True, silent=True
            ),
        )
        self.run.define_metric("generation")
        self.run.define_metric("metrics/*", step_metric="generation")
        self.run.define_metric("samples", step_metric="generation")
        self.run.define_metric("train/step")
        self.run.define_metric("train/loss", step_metric="train/step")
        self.wandb = wandb

    def log(self, generation: int, metrics: dict, picture: bytes, curve: list) -> None:
        row = {f"metrics/{k}": v for k, v in metrics.items()}
        image = self.wandb.Image(_image(picture), caption=f"generation {generation}")
        self.run.log({"generation": generation, **row, "samples": image})
        for step, loss in curve:
            self.run.log({"train/step": step, "train/loss": loss})

    def close(self) -> None:
        self.run.finish()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
