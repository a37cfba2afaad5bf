"""The client's version; a test keeps it equal to pyproject.toml's."""

__version__ = "0.1.0"
