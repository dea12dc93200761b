"""collapse: self-consuming generative training chains on Ray.

The Python API (`collapse.api`): `open_run(uri)`, `open_sweep(uri)`, `run(config)` and
`sweep(spec)`. `collapse.sweep` is also the package of sweep definitions; the package is
callable, so `collapse.sweep(spec)` runs a sweep whichever was imported first.
"""

from collapse.api import Run, open_run, open_sweep, run

__version__ = "0.1.0"
__all__ = ["Run", "open_run", "open_sweep", "run", "sweep", "__version__"]


def __getattr__(name: str):
    if name == "sweep":  # the package, made callable (collapse.sweep -> api.sweep)
        import importlib

        return importlib.import_module("collapse.sweep")
    raise AttributeError(f"module 'collapse' has no attribute {name!r}")
