"""Event broker and Server-Sent Events."""

__all__: list[str] = []
