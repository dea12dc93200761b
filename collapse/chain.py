"""The generation loop: plan -> train -> sample -> evaluate -> commit, resumable at any point.

`ChainWorker` does one generation's work and holds what a chain reuses across generations (the
real pool, the held-out set, the latest samples); it knows nothing of Ray, so a test can run it
in-process. `run_chain` is the driver: it opens (or resumes) the run on storage and hands the
generations to a worker that `collapse.distributed` places on the Ray cluster.

Every random draw comes from a stream keyed by (seed, purpose, generation), each sample from
the noise of its own row, and each generation trains on its inputs exactly as stored, so a
chain resumed after a crash reproduces the uninterrupted chain bit for bit.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from collapse import export, integrity, latents, plots, retention, stored_config, tracking
from collapse.config import ONLINE, REAL_PAIRING, RunConfig, validate
from collapse.data import real
from collapse.data.dataset import open_dataset
from collapse.data.mix import MixPart, expand, plan_mix, used_fraction
from collapse.data.pile import SamplePile
from collapse.data.real import REAL_DIR
from collapse.data.shards import from_parquet, table_to_images, to_parquet
from collapse.data.space import DataSpace
from collapse.errors import UserError
from collapse.evaluation import Evaluator
from collapse.families import get_family
from collapse.lease import RunLease
from collapse.metrics import evaluate, features, flow
from collapse.metrics.inception import weights_location
from collapse.noise import row_normals
from collapse.sampling import grid_size, keeps_noise, sample_grid, sample_locally
from collapse.storage import RunStore, Storage, generation_dir

_STREAMS = {"fit": 2}
LOSS_CURVE = "train_loss.json"  # a trained generation's loss curve: {"step": [], "loss": []}


def stream(seed: int, purpose: str, generation: int = 0) -> np.random.Generator:
    """An independent random stream per (seed, purpose, generation): resume replays it exactly."""
    return np.random.default_rng([seed, _STREAMS[purpose], generation])


class ChainWorker:
    """Runs generations of one chain against its run storage."""

    def __init__(self, config: RunConfig, lease_token: str | None = None):
        self.config = config
        self._lease_token = lease_token  # the driver's: commits stop if another took the run
        self.store = RunStore.for_config(config.storage, config.name)
        self.family = get_family(config.model.family)
        self._where = real.locate(config, self.store)
        self._pool = open_dataset(self._where.pool_uri)
        self.space = DataSpace.of_index(self._pool.index)
        self._held_out: np.ndarray | None = None
        self._real: np.ndarray | None = None
        self._evaluator = Evaluator(config, self.store, self.space, lambda: self.held_out)
        self._train_report: dict[str, float] = {}  # the last Ray Train fit's final report
        self._loss_curve: dict[str, Any] | None = None  # its loss curve's artifact
        self._pairs_record: dict[str, Any] = {}  # the real pairs the last generation used
        self._samples: dict[int, np.ndarray] = {}  # the last generation's (replace loops)
        self._pile = SamplePile()  # every generation's, in order (accumulate)
        self._bounds: np.ndarray | None = None  # scatter axes, fixed by the real data
        self._pool_features: np.ndarray | None = None  # the knn corrector's, in feature space

    @property
    def real(self) -> np.ndarray:
        """The real pool in memory, for closed-form fits only (trained families stream it)."""
        if self._real is None:
            self._real = self.space.to_vectors(self._pool.read_rows([self._where.pool_rows]))
        return self._real

    @property
    def held_out(self) -> np.ndarray:
        """The held-out real rows: evaluation's reference, and the backdrop of a scatter."""
        if self._held_out is None:
            held_out = open_dataset(self._where.held_out_uri)
            self._held_out = self.space.to_vectors(held_out.read_rows([self._where.held_out_rows]))
        return self._held_out

    def run_generation(self, generation: int) -> dict[str, Any]:
        cfg, store = self.config, self.store
        committed = store.committed()
        if len(committed) != generation:
            raise RuntimeError(f"generation {generation} requested, {len(committed)} committed")
        store.clear_generation(generation)
        plan = plan_mix(
            cfg.data.loop,
            generation,
            cfg.data.n_train,
            cfg.data.real_fraction,
            cfg.data.n_real,
            store.sample_counts(),
            generations=cfg.generations,
        )
        clock = time.perf_counter()
        params = self._train(plan, generation)
        model = store.write_artifact(generation, "model/params.npz", _npz(params))
        timings = {"train_s": time.perf_counter() - clock}
        exported = self._export(generation, params)  # the same weights, in diffusers' formats

        clock = time.perf_counter()
        shards, grid = self._sample(params, model, generation)
        samples = self._read_samples(shards)
        timings["sample_s"] = time.perf_counter() - clock

        correction = None
        if cfg.strategy.name == "self_correct":
            clock = time.perf_counter()
            correction, trained_on = self._correct(samples, generation, params)
            timings["correct_s"] = time.perf_counter() - clock
        else:
            trained_on = samples

        clock = time.perf_counter()
        measured = self._evaluate(samples)
        metrics = {**self.family.describe(params), **measured["metrics"]}
        timings["eval_s"] = time.perf_counter() - clock
        if flow.requested(cfg.eval.metrics):
            clock = time.perf_counter()
            metrics.update(self._flow_metrics(params, generation))
            timings["flow_s"] = time.perf_counter() - clock
        picture = store.write_artifact(
            generation, "samples.png", self._picture(generation, samples, grid)
        )

        record = {
            "generation": generation,
            "mix": [part.as_record() for part in plan],
            **_fraction_record(cfg, generation),
            "train_rows": sum(part.count for part in plan),
            "sample_rows": len(samples),
            "samples": shards,
            "sample_bias": cfg.sample.bias,
            "model": [model],
            "metrics": metrics,
            "feature_extractor": measured["feature_extractor"],
            "samples_png": picture,
        }
        if grid:
            record["grid"] = grid
        if correction is not None:  # what the next generation trains on, and how far it moved
            record["corrected"] = correction.pop("shards")
            record["correction"] = correction
        if self._train_report:  # trained families: last step, its loss, where training resumed
            record["train"] = self._train_report
        if exported:
            record["export"] = exported
        if self._loss_curve is not None:  # the loss every train.log_every steps
            record["loss_curve"] = self._loss_curve
        if self._pairs_record:  # RCA/RA Reflow: the real pairs this generation trained on
            record["real_pairs"] = self._pairs_record
        metrics_doc = {
            "generation": generation,
            "metrics": metrics,
            "feature_extractor": measured["feature_extractor"],
            "mix": record["mix"],
        }
        store.write_artifact(generation, "metrics.json", json.dumps(metrics_doc, indent=1).encode())
        record["timings"] = timings
        record["committed_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record.update(self._evaluator.finite_or_stop(metrics, samples, generation))
        if self._lease_token is not None:
            RunLease.check(store.storage, self._lease_token)
        store.commit(record)
        if getattr(self.family, "trains_on_ray", False):  # closed forms keep no checkpoints
            retention.prune_checkpoints(store, generation, cfg.train.keep_checkpoints)
        self._remember(generation, trained_on)
        return record

    def _export(self, generation: int, params: dict[str, np.ndarray]) -> dict[str, Any] | None:
        """The model in its ecosystem's format (`collapse.export`), beside params.npz: the
        format and every file's artifact; None for the closed-form families."""
        fmt, files = export.files(self.config.model.family, params)
        if not files:
            return None
        written = [self.store.write_artifact(generation, k, v) for k, v in files.items()]
        return {"format": fmt, "files": written}

    def run_generations(self, start: int, stop: int) -> Iterator[dict[str, Any]]:
        for generation in range(start, stop):
            yield self.run_generation(generation)

    def _train(self, plan: list[MixPart], generation: int) -> dict[str, np.ndarray]:
        cfg = self.config
        self._train_report = {}
        self._loss_curve = None
        self._pairs_record = {}
        if not getattr(self.family, "trains_on_ray", False):
            x = self._training_set(plan)
            return self.family.fit(x, cfg.model, stream(cfg.seed, "fit", generation))
        from collapse.distributed.datasets import training_dataset
        from collapse.distributed.train import train_generation

        plan = expand(plan)  # trained chains read shards per generation
        committed = self.store.committed()
        samples = {
            p.generation: (self.store.storage, _training_samples(committed[p.generation]))
            for p in plan
            if p.source == "synthetic"
        }
        real_shards = (Storage(self._pool.uri), self._pool.index["shards"])
        seed = cfg.seed * 100_003 + generation
        # the previous generation's model, read once: warm start, real pairs and OCAR share it
        needed = cfg.model.init == "previous" or cfg.strategy.name in REAL_PAIRING + ONLINE
        previous = self._params_of(generation - 1) if generation > 0 and needed else None
        if cfg.strategy.name in REAL_PAIRING and generation > 0:
            real_shards = (self.store.storage, self._real_pairs(plan, generation, seed, previous))
        online = None
        if cfg.strategy.name in ONLINE and generation > 0:
            online = self._online(plan, previous)
            plan = [part for part in plan if part.source == "real"]
        latent_space = None
        if getattr(self.family, "trains_on_latents", False):
            real_shards, samples, latent_space = self._latent_inputs(real_shards, samples)
        clock = time.perf_counter()
        dataset = (
            training_dataset(
                plan,
                real_shards,
                samples,
                self.space,
                seed=seed,
                paired=keeps_noise(cfg),
                latents=latent_space,
            )
            if plan
            else None
        )
        init = None
        if cfg.model.init == "previous" and generation > 0:
            init = self.family.weights(previous)
        built = time.perf_counter() - clock  # the feed: plan, and reading a set held in memory
        weights, report = train_generation(
            cfg, self.store.storage, generation, dataset, self.space, init, online
        )
        curve = report.pop("curve")
        self._train_report = {**report, "feed_s": built}
        document = {"log_every": cfg.train.log_every, "step": [], "loss": []}
        for step, loss in curve:
            document["step"].append(step)
            document["loss"].append(loss)
        self._loss_curve = self.store.write_artifact(
            generation, LOSS_CURVE, json.dumps(document).encode()
        )
        extra = {"captions": self._captions()} if hasattr(self.family, "captions") else {}
        return self.family.to_params(weights, cfg.model, self.space, cfg.sample.steps, **extra)

    def _latent_inputs(
        self,
        real_shards: tuple[Storage, list[dict[str, Any]]],
        samples: dict[int, tuple[Storage, list[dict[str, Any]]]],
    ) -> tuple[tuple[Storage, list], dict[int, tuple[Storage, list]], tuple[str, tuple]]:
        """A latent family's training inputs: the cached latents of the real pool and of each
        planned generation's samples (encoded now where the run has none yet)."""
        from collapse.diffusion.stable_diffusion import latent_shape

        run, pretrained = self.store.storage, self.config.model.pretrained

        def cache(key: str, source: Storage, shards: list, rows: tuple[int, int]) -> list:
            return latents.cached(
                run, key, source, shards, rows, pretrained, self.space, self._encode
            )

        real_latents = (run, cache("real", *real_shards, self._where.pool_rows))
        sample_latents = {
            g: (run, cache(generation_dir(g), storage, shards, (0, 2**62)))
            for g, (storage, shards) in samples.items()
        }
        shape = latent_shape(pretrained, self.space.shape)
        return real_latents, sample_latents, (pretrained, shape)

    def _encode(
        self, pretrained: str, space: DataSpace, jobs: list[tuple[str, str, str]], target: str
    ) -> list[dict[str, Any]]:
        """VAE encoding of shards; `collapse.distributed` moves it to Ray tasks (and GPUs)."""
        return latents.encode_shards(pretrained, space, jobs, target)

    def _captions(self) -> list[str]:
        """The real pool's captions, which a latent family's samples are drawn for: read from
        the real latent cache's caption column (never the images)."""
        lo, hi = self._where.pool_rows
        run, found = self.store.storage, []
        for shard in json.loads(run.read_text(f"latents/real/{latents.INDEX}")):
            table = pq.read_table(run.path(shard["path"]), filesystem=run.fs)
            ids = table.column("id").to_numpy()
            keep = (ids >= lo) & (ids < hi)
            captions = table.column("caption").to_pylist()
            found.extend(c for c, k in zip(captions, keep, strict=True) if k)
        return found

    def _real_pairs(
        self, plan: list[MixPart], generation: int, seed: int, params: dict[str, np.ndarray]
    ) -> list[dict[str, Any]]:
        """Shards of the plan's real rows with the noise the previous generation's model pairs
        them with (RCA/RA Reflow), made anew every `strategy.refresh` generations."""
        strategy = self.config.strategy
        ranges = [list(r) for part in plan if part.source == "real" for r in part.rows]
        previous = self.store.committed()[generation - 1].get("real_pairs")
        if (
            previous is not None
            and previous["rows"] == ranges
            and generation - previous["made_at"] < strategy.refresh
        ):
            self._pairs_record = previous
            return previous["shards"]
        sigma = strategy.sigma if strategy.reverse == "sde" else None
        shards = []
        for a, b in ranges:
            x = self.space.to_vectors(self._pool.read_rows([(a, b)]))
            noise = self.family.reverse(params, x, sigma, strategy.reverse_steps, seed + a)
            table = self.space.to_table(x, "real", None, np.arange(a, b), noise=noise)
            name = f"real_pairs/part-{a:09d}.parquet"
            artifact = self.store.write_artifact(generation, name, to_parquet(table), rows=b - a)
            shards.append({**artifact, "ids": [a, b]})
        self._pairs_record = {"made_at": generation, "rows": ranges, "shards": shards}
        return shards

    def _online(self, plan: list[MixPart], previous: dict[str, np.ndarray]) -> dict[str, Any]:
        """OCAR's settings: the frozen previous model and the planned share of real rows."""
        strategy = self.config.strategy
        real = sum(part.count for part in plan if part.source == "real")
        return {
            "frozen": self.family.weights(previous),
            "real_share": real / sum(part.count for part in plan),
            "forward_steps": self.config.sample.steps,
            "reverse_steps": strategy.reverse_steps,
            "sigma": strategy.sigma if strategy.reverse == "sde" else None,
        }

    def _params_of(self, generation: int) -> dict[str, np.ndarray]:
        data = self.store.read_artifact(self.store.committed()[generation]["model"][0])
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}

    def _evaluate(self, samples: np.ndarray) -> dict[str, Any]:
        """{"metrics", "feature_extractor"}; `collapse.distributed` moves image evaluation to
        its own Ray task (and GPU)."""
        return self._evaluator(samples)

    def _flow_metrics(self, params: dict[str, np.ndarray], generation: int) -> dict[str, float]:
        """A rectified flow's straightness, NFE sweep and inversion (`collapse.metrics.flow`),
        on the first noise rows of this generation's own samples and the first held-out rows
        (at most FLOW_ROWS each)."""
        cfg, evaluator = self.config, self._evaluator
        ids = np.arange(min(cfg.sample.n, flow.FLOW_ROWS), dtype=np.int64)
        noise = row_normals(cfg.seed, ids, self.family.noise_dim(params), stream=generation)
        noise *= cfg.sample.bias  # the noise `sampling.draw` gave these rows
        headline = flow.headline(cfg.eval.metrics)

        def score(samples: np.ndarray) -> float:
            measured = evaluate([headline], evaluator.extract(samples), evaluator.real_features())
            return measured[headline]

        names, rows = flow.requested(cfg.eval.metrics), self.held_out[: flow.FLOW_ROWS]
        return self.family.flow_metrics(params, names, noise, rows, headline, score)

    def _picture(self, generation: int, samples: np.ndarray, grid: list[dict]) -> bytes:
        """samples.png: the fixed-noise grid of an image generation, or a vector generation's
        samples over the held-out real data."""
        if grid:
            return plots.grid_png(np.concatenate([self._read_images(a) for a in grid]))
        if self._bounds is None:
            self._bounds = plots.scatter_bounds(self.held_out)
        title = f"{self.config.name} generation {generation}: samples (blue), real (grey)"
        return plots.scatter_png(samples, self.held_out, title, self._bounds)

    def _read_images(self, artifact: dict[str, Any]) -> np.ndarray:
        return table_to_images(from_parquet(self.store.read_artifact(artifact)))

    def _sample(
        self, params: dict[str, np.ndarray], model: dict[str, Any], generation: int
    ) -> tuple[list[dict], list[dict]]:
        """(sample shards, grid shards)."""
        cfg = self.config
        if cfg.sample.workers == 0:
            grid = grid_size(cfg, self.space)
            shards = sample_locally(
                self.store,
                self.space,
                self.family,
                params,
                cfg.seed,
                generation,
                cfg.sample.n,
                cfg.sample.batch_size,
                keeps_noise(cfg),
                cfg.sample.bias,
            )
            if not grid:
                return shards, []
            args = (self.store, self.space, self.family, params, cfg.seed, generation, grid)
            return shards, [sample_grid(*args, cfg.sample.bias)]
        from collapse.distributed.sampling import sample_with_ray_data

        return sample_with_ray_data(cfg, self.store.uri, self.space, model, generation)

    def _training_set(self, plan: list[MixPart]) -> np.ndarray:
        pieces = []
        for part in plan:
            if part.source == "real":
                pieces.extend(self.real[a:b] for a, b in part.rows)
            elif part.last is not None and self.config.data.loop == "accumulate":
                # every sample of a span of generations: one slice of the pile
                self._samples_of(part.last)
                pieces.append(self._pile.span(part.generation, part.last))
                assert len(pieces[-1]) == part.count, "a span takes all of its samples"
            else:
                for one in part.each():
                    pieces.extend(self._samples_of(one.generation)[a:b] for a, b in one.rows)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]

    def _read_samples(self, shards: list[dict[str, Any]]) -> np.ndarray:
        """A generation's samples in id order, as stored (what the next generation trains on)."""
        tables = [from_parquet(self.store.read_artifact(a)) for a in shards]
        return np.concatenate([self.space.to_vectors(t) for t in tables])

    def _samples_of(self, generation: int) -> np.ndarray:
        """What `generation` stored for later generations to train on (read once)."""
        if self.config.data.loop == "accumulate":  # kept in order: fill the pile up to it
            while len(self._pile) <= generation:
                record = self.store.committed()[len(self._pile)]
                self._pile.append(self._read_samples(_training_samples(record)))
            return self._pile.span(generation, generation)
        if generation not in self._samples:
            self._samples[generation] = self._read_samples(
                _training_samples(self.store.committed()[generation])
            )
        return self._samples[generation]

    def _features_for_knn(self, rows: np.ndarray) -> np.ndarray:
        """Rows in the evaluation's feature space; the real pool's computed once per chain."""
        if rows is not self.real:
            return self._evaluator.extract(rows)
        if self._pool_features is None:
            self._pool_features = self._evaluator.extract(rows)
        return self._pool_features

    def _nearest_real(self, rows: np.ndarray, real: np.ndarray, k: int, *features) -> np.ndarray:
        """The knn corrector's targets, here; `collapse.distributed` runs it as a Ray Data pass
        when `strategy.knn_workers` asks for one."""
        from collapse.strategies.correction import toward_nearest_real

        return toward_nearest_real(rows, real, k, *features)

    def _correct(
        self, samples: np.ndarray, generation: int, params: dict[str, np.ndarray]
    ) -> tuple[dict[str, Any], np.ndarray]:
        """Self-correction (Gillman et al. 2024): a share of the samples, chosen per row from
        the seed, moved toward the true distribution; stored as `gen-k/corrected/` shards.

        The `reference` corrector's model trained on real data only is generation 0's: every
        loop trains generation 0 on real rows alone."""
        from collapse.strategies.correct import correct_rows

        cfg = self.config

        def reference() -> tuple[Any, dict[str, np.ndarray]]:
            return self.family, params if generation == 0 else self._params_of(0)

        ids = np.arange(len(samples), dtype=np.int64)
        corrected, touched = correct_rows(
            samples,
            ids,
            cfg.strategy,
            cfg.data.real,
            lambda: self.real,
            cfg.seed,
            generation,
            reference,
            self._features_for_knn,
            self._nearest_real,
        )
        moved = np.linalg.norm(corrected[touched] - samples[touched], axis=1)
        table = self.space.to_table(corrected, "synthetic", generation, ids)
        stored = self.space.to_vectors(table)  # as the next generation reads it (images: uint8)
        shard = self.store.write_artifact(
            generation, "corrected/part-000000000.parquet", to_parquet(table), rows=len(ids)
        )
        record = {
            "shards": [shard],
            "rows": int(touched.sum()),
            "mean_distance": float(moved.mean()) if len(moved) else 0.0,
            "corrector": cfg.strategy.corrector,
        }
        return record, stored

    def _remember(self, generation: int, samples: np.ndarray) -> None:
        """Keep in memory what the next generation reads: all samples if they accumulate (a
        resumed chain's pile is filled from storage when first needed)."""
        if self.config.data.loop != "accumulate":
            self._samples = {generation: samples}
        elif len(self._pile) == generation:
            self._pile.append(samples)


def _fraction_record(cfg: RunConfig, generation: int) -> dict[str, float]:
    """`real_fraction`: the share of real rows the plan was made with, where it read one."""
    used = used_fraction(cfg.data.loop, cfg.data.real_fraction, generation, cfg.generations)
    return {} if used is None else {"real_fraction": used}


def _training_samples(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The shards a later generation trains on: the corrected samples where there are some."""
    return record.get("corrected") or record["samples"]


def _npz(params: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    return buffer.getvalue()


def open_run(config: RunConfig, lease: RunLease | None = None) -> tuple[RunStore, int]:
    """Create the run, or check that the stored one is this config; return the next generation.

    The real data is prepared here, in the driver, so a source that cannot be had (offline
    torchvision, a missing folder) is reported before any worker starts. `lease` is taken
    after every check that needs no writing and before the first write.
    """
    store = RunStore.for_config(config.storage, config.name)
    store.storage.check_reachable()
    committed = store.committed()  # the manifest is checked before anything acts on it
    stored = stored_config.read(store)
    if stored is None and committed:
        raise UserError(f"{store.uri}: manifest.json exists without config.yaml; refusing to guess")
    extended = stored is not None and stored_config.check_same(stored, config, store.uri)
    if config.model.family == "stable_diffusion":
        from collapse.diffusion.stable_diffusion import check_available

        check_available(config.model.pretrained)
    _check_inception_weights(config, config.eval.features)
    real.check(config, store)  # the user's data, whole, before anything is written
    if lease is not None:
        lease.acquire()
    if stored is not None:
        stored_config.vouch(store)
        if extended:  # a raised `generations`: the chain continues from its last commit
            stored_config.extend(store, config.generations)
        for line in integrity.repair(store):
            print(f"collapse: {line}", file=sys.stderr)
    else:  # real data left by a first attempt that failed before the run was created
        store.storage.delete_dir(REAL_DIR)
    where = real.ensure(config, store)
    if config.eval.features == "auto":  # a parquet dataset: its index says vectors or images
        space = DataSpace.of_index(open_dataset(where.pool_uri).index)
        _check_inception_weights(config, features.resolve("auto", space))
    if stored is None:
        stored_config.write(store, config)
    return store, len(store.committed())


def _check_inception_weights(config: RunConfig, extractor: str) -> None:
    """Missing FID weights fail in one line before anything is trained."""
    if extractor == "inception":
        weights_location(config.eval.inception_weights)


def config_of_run(run_uri: str) -> RunConfig:
    """The stored config of an existing run, relocated to where the run is found now."""
    store = RunStore(run_uri)
    store.storage.check_reachable()
    config = stored_config.read(store)
    if config is None:
        raise UserError(f"{store.uri}: no run here (config.yaml not found)")
    parent, _, name = store.uri.rstrip("/").rpartition("/")
    return validate({**config.model_dump(mode="json"), "storage": parent or "/", "name": name})


@dataclass
class ChainOutcome:
    uri: str
    start: int
    records: list[dict[str, Any]]

    @property
    def already_complete(self) -> bool:
        return not self.records


def run_chain(
    config: RunConfig,
    on_start: Callable[[RunStore, int], None] = lambda store, start: None,
    on_generation: Callable[[dict[str, Any]], None] = lambda record: None,
) -> ChainOutcome:
    """Run (or resume) a chain to `config.generations` on the Ray cluster."""
    from collapse.distributed.chain import remote_worker

    lease = RunLease(RunStore.for_config(config.storage, config.name).storage)
    try:
        store, start = open_run(config, lease)
        outcome = ChainOutcome(store.uri, start, [])
        if start >= config.generations:
            return outcome
        on_start(store, start)
        with (
            tracking.trackers(config, store) as trackers,  # `tracking:`: TensorBoard, MLflow, W&B
            remote_worker(config, lease_token=lease.token) as worker,
        ):
            for record in worker.run_generations(start, config.generations):
                outcome.records.append(record)
                trackers.log(record)
                on_generation(record)
        return outcome
    finally:
        lease.release()
