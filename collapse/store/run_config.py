"""A run's config as stored beside its generations, and the proof that nobody changed it.

`config.yaml` says how every committed generation was computed. A person who edits it (a new
seed, more data) and resumes would get a chain whose first generations follow one config and
the rest another, with nothing recorded. So the run also keeps `config.sha256`, the checksum of
the config as it was written when the run was created. An edit that leaves the config the same
once validated (comments, layout, key order) is accepted; any other edit is refused, with the
keys named, as `collapse run` refuses a changed config. Runs made before the checksum existed
get one on their next open.

Two changes are not edits: keys that do not change what a committed generation computed
(`collapse.config.RESUME_SAFE`) may differ for one invocation and are never stored, and a raised
`generations` extends the chain. An extension rewrites both files, and each write is atomic but
the pair is not, so it goes in three steps that leave a readable run after a crash at any point:
the checksum file first vouches for the old text and the new one, then the new config replaces
the old, then the checksum file keeps the new text's alone. A crash after the first step leaves
the old config (a rerun extends again); after the second, the new one, vouched for.
"""

from __future__ import annotations

import hashlib

from collapse.config import (
    ChainConfig,
    differing_keys,
    dump_yaml,
    parse_yaml,
    resume_safe,
    validate,
)
from collapse.errors import UserError
from collapse.store.layout import CONFIG
from collapse.store.run_store import RunStore

CONFIG_SHA = "config.sha256"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write(store: RunStore, config: ChainConfig) -> None:
    """Create the run's config and its checksum (the checksum last: it vouches for the file)."""
    text = dump_yaml(config)
    store.write_config(text)
    _write_sha(store, [text])


def vouch(store: RunStore) -> None:
    """Record the checksum of the config as it is now, where none is recorded yet (a new run,
    or one made before checksums, whose config is trusted from here on) or where two are (an
    extension interrupted before its last step)."""
    recorded = store.storage.read_text(CONFIG_SHA)
    if recorded is None or len(_recorded(recorded)) > 1:
        _write_sha(store, [store.read_config() or ""])


def _write_sha(store: RunStore, texts: list[str]) -> None:
    lines = "".join(f"{_sha256(text)}  {CONFIG}\n" for text in texts)
    store.storage.write_bytes(CONFIG_SHA, lines.encode(), atomic=True)


def _recorded(text: str) -> list[str]:
    """The checksums a config.sha256 lists (sha256sum's format, a line per file version)."""
    return [line.split()[0] for line in text.splitlines() if line.split()]


def read(store: RunStore) -> ChainConfig | None:
    """The stored config, validated and checked against its checksum; None for no run."""
    text = store.read_config()
    if text is None:
        return None
    uri = store.storage.uri_of(CONFIG)
    raw = parse_yaml(text, uri)
    if not isinstance(raw, dict):
        raise UserError(f"{uri}: a run's config must be a mapping of keys; restore the file")
    try:
        config = validate(raw)
    except UserError as err:
        raise UserError(f"{uri} no longer validates ({err}); restore the file") from None
    recorded = store.storage.read_text(CONFIG_SHA)
    if recorded is None:  # a run made before checksums (`vouch` gives it one)
        return config
    if {_sha256(text), _sha256(dump_yaml(config))} & set(_recorded(recorded)):
        return config
    raise UserError(
        f"{uri} was edited after the run was created (it no longer matches {CONFIG_SHA}), and "
        "the committed generations were computed with the original: undo the edit, or run the "
        "edited config under another --name"
    )


def check_same(stored: ChainConfig, config: ChainConfig, uri: str) -> bool:
    """Refuse to continue run `uri` with a config other than the one it was created with, but
    for keys that may change on resume and a raised `generations`; True when it is raised (the
    run is to be extended)."""
    changed = [k for k in differing_keys(stored, config) if not resume_safe(k, stored)]
    extended = "generations" in changed
    if extended and config.generations < stored.generations:
        raise UserError(
            f"run {uri} has generations: {stored.generations}; a lower count "
            f"({config.generations}) is refused (generations may only be raised): rerun with "
            f"generations={stored.generations}, and read the first {config.generations} with "
            "collapse report"
        )
    changed = [k for k in changed if k != "generations"]
    if changed:
        raise UserError(
            f"run {uri} exists with a different config (differs in: {', '.join(changed)}); "
            "choose another --name or run it with the stored config"
        )
    schedule = stored.data.real_fraction
    if extended and isinstance(schedule, dict) and "linear" in schedule:
        raise UserError(
            f"run {uri}: its data.real_fraction {{linear: [start, end]}} reaches `end` at its "
            f"last generation ({stored.generations - 1}); more generations would change the "
            "schedule midway: start a new run"
        )
    return extended


def extend(store: RunStore, generations: int) -> ChainConfig:
    """Store the run's config with `generations` raised, in the three steps the module's
    docstring gives; the extended config."""
    text = store.read_config()
    stored = read(store)
    if text is None or stored is None:
        raise RuntimeError(f"{store.uri}: extend needs an existing run")
    extended = validate({**stored.model_dump(mode="json"), "generations": generations})
    new = dump_yaml(extended)
    _write_sha(store, [new, text])
    store.write_config(new)
    _write_sha(store, [new])
    return extended


def with_overrides(stored: ChainConfig, overrides: list[str], uri: str) -> ChainConfig:
    """The stored config of run `uri` with `collapse resume --set` applied: keys that may change
    on resume, and a raised `generations` (checked when the run opens); any other key is refused
    by name."""
    from collapse.config import RESUME_SAFE, apply_overrides

    raw = apply_overrides(stored.model_dump(mode="json"), overrides)
    config = validate(raw)
    moved = [key for key in ("name", "storage") if raw[key] != getattr(stored, key)]
    refused = moved + [
        key
        for key in differing_keys(stored, config)
        if key != "generations" and not resume_safe(key, stored)
    ]
    if refused:
        raise UserError(
            f"resume --set {refused[0]}: not a key a resume may change ({uri} was computed with "
            f"the stored value); allowed: {', '.join(RESUME_SAFE)}, and generations raised; "
            "to change it, run the config under another --name"
        )
    return config
