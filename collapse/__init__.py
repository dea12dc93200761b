"""collapse: self-consuming generative training chains on Ray."""

__version__ = "0.1.0"
