"""collapse from Python: a run's results as a DataFrame, arrays and loaded models, and chains and
sweeps started from a script.

    import collapse

    run = collapse.open_run("./runs/quickstart")
    run.metrics()            # pandas DataFrame, a row per committed generation
    run.samples(3)           # numpy: (n, d) float32 vectors, or (n, H, W, C) uint8 images
    run.model(3)             # a torch module or a diffusers pipeline
    run.loss_curve(3)        # the training loss of a trained generation, step by step
    collapse.open_sweep("./runs/mad-loops")   # a row per trial and generation
    collapse.run("configs/quickstart.yaml")   # runs (or resumes) the chain; its Run
    collapse.sweep("configs/sweeps/mad_loops.yaml")

Everything is read from the run's files (manifest, artifacts) and checked against the
manifest's checksums, as `collapse report` reads them; nothing here writes to a run but
`run` and `sweep`. Heavy imports (pandas, torch, diffusers, Ray) happen on first use, so
`import collapse` stays cheap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from collapse.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from collapse.config import ChainConfig
    from collapse.store.records import GenerationRecord
    from collapse.store.run_store import RunStore


class Run:
    """A chain run on storage (local or S3): its config, its committed generations' metrics,
    samples, models and loss curves."""

    def __init__(self, uri: str):
        from collapse.store import run_config
        from collapse.store.run_store import RunStore

        self.store: RunStore = RunStore(uri)
        self.uri = self.store.uri
        config = run_config.read(self.store)
        if config is None:
            raise UserError(f"{self.uri}: no run here (config.yaml not found)")
        self.config: ChainConfig = config

    def __repr__(self) -> str:
        return f"Run({self.uri!r}, generations committed: {len(self.records)})"

    @property
    def records(self) -> list[GenerationRecord]:
        """The manifest's record of every committed generation, in order (read afresh)."""
        return self.store.committed(refresh=True)

    def record(self, generation: int) -> GenerationRecord:
        records = self.records
        if not 0 <= generation < len(records):
            raise UserError(
                f"{self.uri}: generation {generation} is not committed "
                f"({len(records)} committed: 0-{len(records) - 1})"
                if records
                else f"{self.uri}: no generation is committed yet"
            )
        return records[generation]

    def metrics(self) -> pd.DataFrame:
        """A row per committed generation: `generation`, each metric, the metrics `collapse
        evaluate` measured again as `metric@extractor`, then `feature_extractor`, row counts,
        `sample_bias`, the final training loss (`train_loss`, trained families) and the
        seconds each step took (`train_s`, `sample_s`, ...)."""
        import pandas as pd

        from collapse.report import load_records

        records = self.records
        shown = {r["generation"]: r for r in load_records([self.uri])}
        rows = []
        for record in records:
            again = {
                f"{name}@{e['feature_extractor']}": value
                for e in shown.get(record["generation"], {}).get("evaluations", [])
                for name, value in e["metrics"].items()
            }
            row = {"generation": record["generation"], **record["metrics"], **again}
            row["feature_extractor"] = record.get("feature_extractor")
            row["train_rows"], row["sample_rows"] = record["train_rows"], record["sample_rows"]
            row["sample_bias"] = record.get("sample_bias")
            if "train" in record:
                row["train_loss"] = record["train"].get("loss")
            row.update(record.get("timings", {}))
            rows.append(row)
        return pd.DataFrame(rows)

    def samples(self, generation: int, dataset: bool = False) -> Any:
        """The generation's samples in id order: (n, d) float32 vectors or (n, H, W, C) uint8
        images as numpy, read whole and checked against their checksums; with `dataset=True`
        a Ray Dataset over the same shards (every stored column: `x` or `image`, `caption`,
        `noise`, `id`, ...), streamed rather than held, for sets larger than memory."""
        shards = self.record(generation)["samples"]
        if dataset:
            from collapse.distributed.stored_shards import read_shards

            return read_shards(self.store.storage, shards)
        import numpy as np

        from collapse.data.shards import from_parquet, table_kind, table_to_images, table_to_vectors

        parts = []
        for shard in shards:
            table = from_parquet(self.store.read_artifact(shard))
            read = table_to_images if table_kind(table) == "image" else table_to_vectors
            parts.append(read(table))
        return np.concatenate(parts)

    def model(self, generation: int) -> Any:
        """The generation's model, loaded: for `ddpm` images a diffusers `DDPMPipeline` (its
        scheduler the DDIM the chain samples with), for `rectified_flow` images the
        `UNet2DModel` (the scheduler is beside it, docs/results.md), for `stable_diffusion` the
        pretrained `StableDiffusionPipeline` with the generation's LoRA or UNet and the chain's
        DDIM scheduler, for vector data the MLP (`collapse.training.nets.VectorField`), in eval
        mode; for the closed-form families their parameters (a dict of numpy arrays).

        Trained generations load from their exported files (`collapse.families.export`) with
        diffusers' own `from_pretrained` / `load_lora_weights`; a run written before exports
        existed is exported in memory from its `params.npz` first."""
        from collapse.families import export, get_family
        from collapse.families.protocol import TrainedFamily

        record = self.record(generation)
        params = self._params(record)
        family = get_family(self.config.model.family)
        if not isinstance(family, TrainedFamily):
            return params
        if "export" in record:  # copied out of the run, each file checked on the way
            files = {
                artifact["path"].split("/", 1)[1]: self.store.read_artifact(artifact)
                for artifact in record["export"]["files"]  # paths below gen-k/
            }
        else:
            files = family.export(params)[1]
        return export.load(self.config.model.family, params, files)

    def loss_curve(self, generation: int) -> pd.DataFrame:
        """A trained generation's training loss: `step` and `loss` (the mean of rank 0's loss
        over the `train.log_every` steps up to `step`), as stored in `gen-k/train_loss.json`.
        Empty for closed-form families and runs written before loss curves were kept."""
        import pandas as pd

        artifact = self.record(generation).get("loss_curve")
        if artifact is None:
            return pd.DataFrame({"step": [], "loss": []})
        curve = json.loads(self.store.read_artifact(artifact))
        return pd.DataFrame({"step": curve["step"], "loss": curve["loss"]})

    def _params(self, record: GenerationRecord) -> dict[str, np.ndarray]:
        import io

        import numpy as np

        data = self.store.read_artifact(record["model"][0])
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}


def open_run(uri: str) -> Run:
    """The run at `uri` (a local path or s3://bucket/prefix/name)."""
    return Run(uri)


def open_sweep(uri: str) -> pd.DataFrame:
    """A sweep's results: a row per trial and committed generation, with `trial` (the trial's
    run name), `uri` (its run, for `open_run`), the value of each swept key as a column
    (`data.real_fraction`, ...), `generation` and the metrics."""
    import pandas as pd

    from collapse.report import load_records, sweep_trials

    trials = sweep_trials(uri)
    if trials is None:
        raise UserError(f"{uri}: no sweep here (sweep.yaml not found)")
    rows = [
        {
            "trial": r["run"],
            "uri": r["uri"],
            **trials.params[r["uri"]],
            "generation": r["generation"],
            **r["metrics"],
        }
        for r in load_records(trials.run_uris)
    ]
    return pd.DataFrame(rows)


def run(
    config: ChainConfig | Mapping[str, Any] | str | os.PathLike[str],
    overrides: Sequence[str] = (),
    quiet: bool = False,
) -> Run:
    """Run (or resume, or extend) a chain, as `collapse run` does, and open it.

    `config` is a chain config: a YAML path, a mapping of keys (missing ones take their
    defaults) or a `ChainConfig`; `overrides` are `--set` items (`"data.real_fraction=0.5"`).
    Progress goes to stderr unless `quiet`."""
    from collapse.config import ChainConfig, apply_overrides, load_config, validate
    from collapse.driver.launch import run_chain
    from collapse.driver.progress import ChainProgress

    if isinstance(config, ChainConfig):
        raw = config.model_dump(mode="json")
        resolved = validate(apply_overrides(raw, list(overrides)))
    elif isinstance(config, Mapping):
        resolved = validate(apply_overrides(dict(config), list(overrides)))
    else:
        resolved = load_config(config, list(overrides))
    progress = ChainProgress(resolved, quiet=quiet)
    outcome = run_chain(resolved, on_start=progress.start, on_generation=progress.generation)
    if not quiet:
        progress.finish(outcome.uri, outcome.records, outcome.already_complete)
    return Run(outcome.uri)


def sweep(
    spec: Mapping[str, Any] | str | os.PathLike[str], overrides: Sequence[str] = ()
) -> pd.DataFrame:
    """Run (or resume, or extend) a sweep, as `collapse sweep` does; its results as
    `open_sweep` gives them. `spec` is a sweep YAML path or a mapping (`base` a mapping or a
    path relative to the working directory). A failed trial raises `UserError` after the
    others finished; rerunning resumes it."""
    from collapse.config import apply_overrides
    from collapse.distributed.tune import run_sweep
    from collapse.store.storage import Storage
    from collapse.sweeps.definition import check_sweep, create_or_resume_sweep, load_sweep

    if isinstance(spec, Mapping):
        raw = apply_overrides(dict(spec), list(overrides))
        if isinstance(raw.get("base"), str | os.PathLike):
            from collapse.config import read_config_file

            raw["base"] = read_config_file(raw["base"])
        if isinstance(raw.get("storage"), str):  # trials run in other working directories
            raw["storage"] = Storage(raw["storage"]).uri
        loaded = check_sweep(raw)
    else:
        loaded = load_sweep(spec, list(overrides))
    create_or_resume_sweep(loaded)
    results = run_sweep(loaded)
    failed = [r for r in results if r.error is not None]  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__
    if failed:
        raise UserError(
            f"{len(failed)} of {len(results)} trials of {loaded.uri} failed (first: "
            f"{str(failed[0].error).splitlines()[0]}); rerun to resume them"
        )
    return open_sweep(loaded.uri)
