"""`collapse run --dry-run`: what a config will do, before it does anything.

It reads (the stored run, if there is one) and writes nothing: no run directory, no lease, no
real data, no Ray. A run that `collapse run` would refuse (a changed config, a lowered
`generations`) is refused here with the same line.
"""

from __future__ import annotations

from collapse.config import ChainConfig, dump_yaml
from collapse.data.mix import MixPart, plan_mix
from collapse.distributed.resources import asks, peak, trains_on_ray
from collapse.engine import preflight
from collapse.store import run_config
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore

SHOWN_GENERATIONS = 3


def describe(config: ChainConfig, shown: int = SHOWN_GENERATIONS) -> str:
    """The resolved config, the state of the run, the mix plans of the next `shown`
    generations, the Ray resources and where the run writes, as the text the CLI prints."""
    preflight.check(config)
    store = RunStore.for_config(config.storage, config.name)
    store.storage.check_reachable()
    committed = store.committed()
    stored = run_config.read(store)
    state = _state(config, stored, len(committed), store.uri)
    lines = [f"run: {store.uri}", f"  {state}", "", "config (resolved):"]
    lines += [f"  {line}" for line in dump_yaml(config).splitlines()]
    start = len(committed)
    stop = min(config.generations, start + shown)
    lines += ["", f"mix plans (generations {start}-{stop - 1}):" if stop > start else "mix plans:"]
    lines += [f"  {line}" for line in _plans(config, committed, start, stop)] or ["  none to run"]
    lines += ["", "Ray resources (per generation; its steps run one after another):"]
    found = asks(config)
    for ask in found:
        each = _amount(ask.cpus, ask.gpus)
        lines.append(f"  {ask.step:<9} {ask.count} x {ask.what}: {each} each")
    cpus, gpus = peak(found)
    lines.append(f"  at most {_amount(cpus, gpus)} at once")
    lines += ["", "writes:", *(f"  {line}" for line in _writes(config, store.uri))]
    return "\n".join(lines)


def _state(config: ChainConfig, stored: ChainConfig | None, committed: int, uri: str) -> str:
    if stored is None:
        return f"new run: generations 0-{config.generations - 1}"
    if run_config.check_same(stored, config, uri):
        return (
            f"exists with {committed} committed generations: extends it from "
            f"{stored.generations} to {config.generations} generations"
        )
    if committed >= config.generations:
        return f"exists with all {committed} generations: nothing to do"
    return f"exists with {committed} committed generations: resumes at generation {committed}"


def _plans(
    config: ChainConfig, committed: list[GenerationRecord], start: int, stop: int
) -> list[str]:
    """Each generation's plan; a generation not yet run is taken to store `sample.n` samples."""
    data = config.data
    sample_rows = [record["sample_rows"] for record in committed]
    sample_rows += [config.samples_per_generation] * (stop - len(sample_rows))
    lines = []
    for generation in range(start, stop):
        plan = plan_mix(
            data.loop,
            generation,
            data.n_train,
            data.real_fraction,
            data.n_real,
            sample_rows[:generation],
            generations=config.generations,
        )
        parts = " + ".join(_part(part) for part in plan)
        lines.append(f"gen {generation}: {sum(p.count for p in plan)} rows = {parts}")
    return lines


def _part(part: MixPart) -> str:
    rows = ", ".join(f"[{a}, {b})" for a, b in part.rows)
    if part.source == "real":
        return f"{part.count} real rows {rows}"
    whose = f"gen {part.generation}" if part.last is None else f"gens {part.generation}-{part.last}"
    return f"{part.count} samples of {whose} {rows}"


def _amount(cpus: float, gpus: float) -> str:
    text = f"{cpus:g} CPU"
    return f"{text} + {gpus:g} GPU" if gpus else text


def _writes(config: ChainConfig, uri: str) -> list[str]:
    kind = config.data.real.partition(":")[0]
    lines = [
        f"{uri}/config.yaml, config.sha256, manifest.json, lease.json (while running)",
        f"{uri}/gen-NNNN/: model, samples, metrics.json, samples.png per generation",
    ]
    if trains_on_ray(config):
        lines.append(
            f"{uri}/gen-NNNN/model/: params.npz and the model in diffusers' formats; "
            "train_loss.json"
        )
    if config.tracking.tensorboard:
        lines.append(f"{uri}/tensorboard/: TensorBoard event files")
    if kind != "parquet":
        lines.append(f"{uri}/real/: the run's copy of {config.data.real}")
    if trains_on_ray(config) and config.train.workers:
        keep = config.train.keep_checkpoints
        kept = (
            "kept for every generation"
            if keep == "all"
            else "kept while its generation is in flight"
            + (f" and for the last {keep} committed" if keep else "")
        )
        lines.append(f"{uri}/gen-NNNN/train/: Ray Train checkpoints, {kept}")
    return lines
