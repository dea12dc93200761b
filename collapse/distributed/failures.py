"""What a failure on the cluster was, however deep Ray wrapped it.

An exception raised in a Ray Train worker, a Ray Data actor or a task reaches the driver inside
Ray's own errors (a storage error in a sampling actor arrives inside two task errors), so a
user's one-line error, a diverged training or a full disk is found by walking the chain of
causes, never by the outermost type.
"""

from __future__ import annotations

import ray

from collapse.errors import UserError
from collapse.store.storage import storage_cause


def user_error(err: BaseException) -> UserError | None:
    """The user's error behind a failure (every cause Ray or Python recorded, each once)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        # Ray's task error is made an instance of its cause's class too: look through it
        if isinstance(current, UserError) and not isinstance(current, ray.exceptions.RayError):
            return current
        stack.extend((getattr(current, "cause", None), current.__cause__, current.__context__))
    return None


def diverged_message(err: BaseException) -> str | None:
    """The message of a `Diverged` raised in a training worker, however Ray Train wrapped it."""
    seen: BaseException | None = err
    while seen is not None:
        for line in str(seen).splitlines():
            if "training diverged:" in line:
                return line[line.index("training diverged:") :].strip()
        seen = seen.__cause__ or seen.__context__
    return None


def storage_failure(err: BaseException) -> tuple[str, str] | None:
    """A full, read-only or forbidden file system behind a failed fit: (reason, advice)."""
    seen: BaseException | None = err
    while seen is not None:
        cause = storage_cause(str(seen), getattr(seen, "errno", None))
        if cause is not None:
            return cause
        seen = seen.__cause__ or seen.__context__
    return None
