"""State-graph runner that streams its execution."""

__all__: list[str] = []
