"""edgekit toolkit: CLI, pipeline, data, model and parity. Heavy libraries are imported lazily."""

__version__ = "0.1.0"
