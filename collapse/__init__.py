"""collapse: self-consuming generative training chains on Ray.

The Python API (`collapse.api`): `open_run(uri)` and `open_sweep(uri)` read a run or a sweep,
`run(config)` and `sweep(spec)` run (or resume) one. The command line is `collapse.cli`; the
packages below them are layers whose imports only point down (docs/architecture.md).
"""

from collapse.api import Run, open_run, open_sweep, run, sweep

__version__ = "0.1.0"
__all__ = ["Run", "open_run", "open_sweep", "run", "sweep", "__version__"]
