"""What a killed driver's chain leaves on the cluster, found and stopped by the next driver.

Ray kills a dead driver's actors and the actors those own, but not everything a chain starts is
owned that way. Ray Train V2 starts a detached `PlacementGroupCleaner` per training run, which
watches its controller through the State API and so never exits on a cluster without a
dashboard once that controller died without stopping it; and on a long-lived cluster a Train
controller has been seen alive long after its owner, the chain's actor, was gone.

The GCS actor table records every actor with its worker's address, its owner's address, its
job and its lifetime, dead actors included. So the actors that a run's earlier chain actors
started, directly or through others, are found by walking ownership down from the actors with
the run's chain-actor name; those still alive are stopped, and the placement groups any of them
created are removed (a killed controller's group otherwise keeps its CPUs or GPUs reserved until
the driver's job ends: the cleaner was to remove it). The next driver does this for a dead
driver's run (the lease guarantees no live driver of the run is left to own them), and a driver
for its own run when its chain actor is killed early (an error, Ctrl-C).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import ray
from ray import PlacementGroupID
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

_GONE = ("DEAD",)


def _where(address: dict[str, Any]) -> tuple[str, int]:
    return address["IPAddress"], int(address["Port"])


def _could_have_made(owner: dict[str, Any], actor: dict[str, Any]) -> bool:
    """Whether `owner` could have started `actor`, which names `owner`'s worker address as its
    owner's: a worker's port is reused by later workers, so an owner counts only while it was
    alive, and only within its own job."""
    if actor["JobID"] != owner["JobID"] or actor["StartTime"] < owner["StartTime"]:
        return False
    ended = owner["EndTime"]
    return owner["State"] not in _GONE or not ended or actor["StartTime"] <= ended


def started_by(actors: list[dict[str, Any]], chain_actor: str) -> list[dict[str, Any]]:
    """The actors started, directly or not, by any actor named `chain_actor` (the run's chain
    actors, alive or dead), alive or dead, from GCS actor-table entries; pure, for tests."""
    by_owner: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for actor in actors:  # a long-lived cluster keeps thousands of dead actors: index once
        by_owner[_where(actor["OwnerAddress"])].append(actor)
    found = [a for a in actors if a["Name"] == chain_actor]
    seen = {a["ActorID"] for a in found}
    frontier = list(found)
    while frontier:
        owner = frontier.pop()
        for actor in by_owner.get(_where(owner["Address"]), ()):
            if actor["ActorID"] not in seen and _could_have_made(owner, actor):
                seen.add(actor["ActorID"])
                found.append(actor)
                frontier.append(actor)
    return [a for a in found if a["Name"] != chain_actor]


def left_behind(actors: list[dict[str, Any]], chain_actor: str) -> list[dict[str, Any]]:
    """Those of `started_by` still alive."""
    return [a for a in started_by(actors, chain_actor) if a["State"] not in _GONE]


def _placement_groups() -> list[tuple[bytes, str, bool]]:
    """(id, its creator actor's id in hex, removed) of every placement group: the GCS table,
    whose parsed form (`ray.util.placement_group_table`) leaves the creator out."""
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table = gcs_pb2.PlacementGroupTableData  # type: ignore[attr-defined]  # protoc: made at import
    found = []
    for raw in state._connect_and_get_accessor().get_placement_group_table():
        group = table.FromString(raw)
        found.append(
            (group.placement_group_id, group.creator_actor_id.hex(), group.state == table.REMOVED)
        )
    return found


@ray.remote(num_cpus=0, max_retries=0)
def _stop_process(pid: int, class_name: str) -> bool:
    """Kill an actor's worker process on its node, if it is still that actor's process."""
    import psutil

    try:
        process = psutil.Process(pid)
        if not " ".join(process.cmdline()).startswith(f"ray::{class_name}"):
            return False
        process.kill()
    except psutil.Error:
        return False
    return True


def stop_left_behind(chain_actor: str) -> list[str]:
    """Remove the placement groups the run's chain actors' descendants made and stop those
    descendants still alive; the class names of those stopped.

    Without a handle an unnamed actor cannot be `ray.kill`ed, so its worker process is killed
    on its node; Ray then records the actor as dead (none of these restart)."""
    from ray._private.state import state  # the actor table, with no dashboard needed

    actors = list(state.actor_table(None).values())
    makers = {a["ActorID"] for a in started_by(actors, chain_actor)}
    for group, creator, removed in _placement_groups():
        if creator in makers and not removed:
            remove_placement_group(PlacementGroup(PlacementGroupID(group)))
    orphans = left_behind(actors, chain_actor)
    stops = [
        _stop_process.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(a["Address"]["NodeID"], soft=False)
        ).remote(a["Pid"], a["ActorClassName"])
        for a in orphans
    ]
    stopped = ray.get(stops)
    return [a["ActorClassName"] for a, done in zip(orphans, stopped, strict=True) if done]
