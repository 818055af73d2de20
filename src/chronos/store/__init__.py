"""Checkpoint storage: memory, SQLite (default), Postgres."""

__all__: list[str] = []
