"""The graph tests run on each checkpoint store in turn, with the store suite's fixtures."""

from tests.store.conftest import anyio_backend, store

__all__ = ["anyio_backend", "store"]
