"""Model families: each says how to fit or train one generation and sample from it, nothing more.

A family is an object of a class of `collapse.families.protocol` (closed-form or trained),
registered in one place: `collapse.config.model_section.FAMILIES`, a line per family giving
its config section and the module whose `FAMILY` it is. That registry is the only list of
family names; the config's `model:` union, `collapse list families` and the errors that name
the allowed families are read from it. A family's module is imported on first use, so that
a run of one family does not pay for the imports of the others (torch, diffusers, sklearn).
"""

from __future__ import annotations

import importlib

from collapse.config.model_section import FAMILIES
from collapse.families.protocol import Family

NAMES = tuple(FAMILIES)


def get_family(name: str) -> Family:
    """The registered family `name` (its module imported now, if it was not yet)."""
    registration = FAMILIES.get(name)
    if registration is None:
        raise ValueError(f"unknown model family {name!r}; allowed: {', '.join(NAMES)}")
    family: Family = importlib.import_module(registration.module).FAMILY
    return family
