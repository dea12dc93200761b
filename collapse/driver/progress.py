"""What a person watching a chain sees: a bar over generations, a line per generation, a summary."""

from __future__ import annotations

import sys

from tqdm import tqdm

from collapse.config import ChainConfig
from collapse.store.records import GenerationRecord
from collapse.store.run_store import RunStore

# Beyond this many generations a line each would bury the bar; the bar's postfix carries them.
_LINES_UP_TO = 100
_HEADLINE = ("w2", "fid", "mmd", "var", "sigma2", "precision", "recall")


def metrics_line(metrics: dict[str, float], limit: int = 4) -> str:
    keys = [k for k in _HEADLINE if k in metrics][:limit]
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys)


class ChainProgress:
    def __init__(self, config: ChainConfig, quiet: bool = False):
        self.config = config
        self.quiet = quiet
        self.bar: tqdm | None = None

    def start(self, store: RunStore, start: int) -> None:
        total = self.config.generations
        if start:
            self.say(f"resuming {store.uri} at generation {start} of {total}")
        else:
            self.say(f"running {self.config.name}: {total} generations -> {store.uri}")
        self.bar = tqdm(
            total=total,
            initial=start,
            desc=self.config.name,
            unit="gen",
            file=sys.stderr,
            disable=self.quiet,
            dynamic_ncols=True,
            leave=False,
        )

    def generation(self, record: GenerationRecord) -> None:
        metrics, t = record["metrics"], record["timings"]
        if self.bar is None:
            return
        self.bar.update(1)
        self.bar.set_postfix_str(metrics_line(metrics, 3), refresh=False)
        if self.config.generations <= _LINES_UP_TO and not self.quiet:
            steps = " ".join(f"{k[:-2]} {v:.2f}s" for k, v in t.items())
            nonfinite = record.get("nonfinite")  # committed under eval.allow_nonfinite
            note = f"  non-finite: {', '.join(nonfinite)} (allowed)" if nonfinite else ""
            self.bar.write(
                f"gen {record['generation']:>4}  trained on {record['train_rows']} rows  "
                f"[{steps}]  {metrics_line(metrics, 6)}{note}",
                file=sys.stderr,
            )

    def finish(self, uri: str, records: list[GenerationRecord], already_complete: bool) -> None:
        if self.bar is not None:
            self.bar.close()
        if already_complete:
            print(f"nothing to do: {uri} already has all {self.config.generations} generations")
        else:
            last = records[-1]
            print(
                f"done: generations {records[0]['generation']}-{last['generation']} "
                f"committed in {uri}\n"
                f"  final (generation {last['generation']}): {metrics_line(last['metrics'], 8)}\n"
                f"  manifest: {uri}/manifest.json\n"
                f"  report:   collapse report {uri} --plots {self.config.name}-plots"
            )

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)
