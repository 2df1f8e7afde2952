"""charpipe: a stateful character-level GRU as a cached Prefect pipeline.

The library (this package) is plain functions over files and arrays; the
Prefect layer lives in the top-level `tasks` and `flows` packages.
"""

__version__ = "0.1.0"
