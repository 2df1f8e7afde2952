"""Prefect flows: the deployable entrypoints of charpipe."""
