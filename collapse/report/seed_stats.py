"""Seeds as an axis: each metric's mean and spread over chains that differ only in their seed.

One chain's curve mixes the effect of its settings with the luck of its seed: at toy scale the
gap between two strategies can be no larger than the spread between two seeds of one. So when
the runs given to `collapse report` (a sweep's trials included) contain chains whose stored
configs are the same but for `seed` (and their name and storage), they are grouped, and each
group is reported by its mean, standard deviation (ddof 1) and min-max over seeds, per
generation, in the table and as a band around the mean in the curves.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

_NOT_SETTINGS = ("seed", "name", "storage")  # what may differ between seeds of one setting


@dataclass
class SeedGroup:
    """Runs of one setting: `label` names the setting by the keys that tell it from the other
    groups (or by the runs' common name when there is one group)."""

    label: str
    settings: dict[str, Any]  # the keys that differ between groups, at this group's values
    uris: list[str]
    seeds: list[int]


def group_by_seed(configs: dict[str, dict[str, Any]]) -> list[SeedGroup]:
    """Groups of the runs (URI -> flattened stored config) that differ only in their seed;
    [] unless some setting was run with two seeds or more. Runs that share a setting with no
    other seed form a group of one."""
    by_setting: dict[str, list[str]] = defaultdict(list)
    for uri, flat in configs.items():
        by_setting[_setting_key(flat)].append(uri)
    groups = list(by_setting.values())
    if not any(len({configs[u].get("seed") for u in uris}) > 1 for uris in groups):
        return []
    firsts = [configs[uris[0]] for uris in groups]
    keys = sorted({k for flat in firsts for k in flat if k not in _NOT_SETTINGS})
    differing = [k for k in keys if len({_canonical(f.get(k)) for f in firsts}) > 1]
    found = []
    for uris, first in zip(groups, firsts, strict=True):
        settings = {k: first.get(k) for k in differing}
        label = ", ".join(f"{k}={_text(v)}" for k, v in settings.items())
        if not label:
            label = _common_name([str(configs[u].get("name", u)) for u in uris])
        seeds = sorted(int(configs[u].get("seed", 0)) for u in uris)
        found.append(SeedGroup(label, settings, uris, seeds))
    return found


def across_seeds(records: list[dict[str, Any]], groups: list[SeedGroup]) -> list[dict[str, Any]]:
    """Per group and generation: `seeds` (how many runs reached it) and, per metric, its
    `mean`, `sd` (None for one seed), `min` and `max` over those runs."""
    group_of = {uri: group for group in groups for uri in group.uris}
    values: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    count: dict[tuple[int, int], int] = defaultdict(int)
    for record in records:
        group = group_of.get(record["uri"])
        if group is None:
            continue
        key = (groups.index(group), record["generation"])
        count[key] += 1
        for name, value in record["metrics"].items():
            values[key][name].append(float(value))
    out = []
    for i, generation in sorted(count):
        group = groups[i]
        out.append(
            {
                "group": group.label,
                "settings": group.settings,
                "generation": generation,
                "seeds": count[i, generation],
                "metrics": {n: spread(v) for n, v in values[i, generation].items()},
            }
        )
    return out


def spread(values: list[float]) -> dict[str, float | None]:
    """mean, sample sd (ddof 1; None for a single value), min and max."""
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def last_common(rows: list[dict[str, Any]], groups: list[SeedGroup]) -> list[dict[str, Any]]:
    """Each group's row at the last generation that all its runs reached (a sweep's early stop
    ends some trials sooner): where every seed counts."""
    found = []
    for group in groups:
        mine = [r for r in rows if r["group"] == group.label and r["seeds"] == len(group.uris)]
        if mine:
            found.append(max(mine, key=lambda r: r["generation"]))
    return found


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a printed table: the setting, generation, seeds, and per metric one cell
    `mean ± sd [min, max]`."""
    return [
        {
            **({k: _text(v) for k, v in r["settings"].items()} or {"runs": r["group"]}),
            "generation": r["generation"],
            "seeds": r["seeds"],
            **{name: _cell(s) for name, s in r["metrics"].items()},
        }
        for r in rows
    ]


def _cell(s: dict[str, float | None]) -> str:
    sd = "-" if s["sd"] is None else f"{s['sd']:.3g}"
    return f"{s['mean']:.4g} ± {sd} [{s['min']:.4g}, {s['max']:.4g}]"


def _setting_key(flat: dict[str, Any]) -> str:
    return _canonical({k: v for k, v in flat.items() if k not in _NOT_SETTINGS})


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _common_name(names: list[str]) -> str:
    """The runs' shared name prefix ("rf-s0", "rf-s1" -> "rf"), or all their names."""
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix.rstrip("-_.0123456789") if len(names) > 1 else prefix
    return prefix or ", ".join(names)
