"""The version of clipsearch (pyproject.toml reads it from here); any stage may import it."""

__version__ = "0.1.0"
