"""Store and broker URLs, parsed once the same way: `urllib.parse`, percent-decoding, and
query options checked against what the backend understands.

```python
url = parse_url("sqlite:///x%20y.db?table=runs", kind="store")
path = url.path                                   # "x y.db"
options = url.options({"table": str})             # {"table": "runs"}
```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from chronos.errors import ConfigurationError

__all__ = ["ParsedURL", "choice", "parse_url", "redacted"]


@dataclass(frozen=True, slots=True)
class ParsedURL:
    url: str
    kind: str  # "store" or "broker", for messages
    scheme: str  # lower case
    path: str  # netloc and path, percent-decoded, the first "/" removed: a file path
    query: tuple[tuple[str, str], ...]

    def options(
        self, known: Mapping[str, Callable[[str], Any]], *, others: bool = False
    ) -> dict[str, Any]:
        """The query's options in `known`, each converted by its function.

        With `others`, options not in `known` are left to the backend's own client (libpq's,
        redis-py's: see `without`); otherwise they are refused.

        Raises:
            ConfigurationError: an option not in `known` (unless `others`), one given twice,
                or one whose value its function refuses.
        """
        options: dict[str, Any] = {}
        for name, raw in self.query:
            if name not in known and others:
                continue
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise ConfigurationError(
                    f"{self.scheme}:// {self.kind} URLs do not understand the option {name!r} "
                    f"(understood: {allowed})"
                )
            if name in options:
                raise ConfigurationError(f"the {self.kind} URL option {name!r} is given twice")
            try:
                options[name] = known[name](raw)
            except ValueError as exc:
                raise ConfigurationError(
                    f"the {self.kind} URL option {name}={raw!r} is invalid: {exc}"
                ) from exc
        return options

    @property
    def shown(self) -> str:
        """The URL for messages: its password, if any, replaced by `***`."""
        return redacted(self.url)

    def without(self, names: Iterable[str]) -> str:
        """The URL with the query options in `names` removed, for the backend's own client."""
        drop = set(names)
        query = urlencode([(name, value) for name, value in self.query if name not in drop])
        return urlsplit(self.url)._replace(query=query).geturl()


def parse_url(url: str, *, kind: str) -> ParsedURL:
    """Split `url` into its scheme, decoded path and query options.

    Raises:
        ConfigurationError: not a URL (no `scheme://`, a malformed host or query).
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise ConfigurationError(f"malformed {kind} URL: {exc}") from exc
    if not parts.scheme or not url[len(parts.scheme):].startswith("://"):
        raise ConfigurationError(f"not a {kind} URL: {redacted(url)!r}")
    if parts.fragment:
        raise ConfigurationError(
            f"a {kind} URL has no #fragment (a '#' in a path is %23): {redacted(url)!r}"
        )
    location = parts.netloc + parts.path
    path = unquote(location[1:] if location.startswith("/") else location)
    try:
        query = tuple(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    except ValueError as exc:
        raise ConfigurationError(
            f"malformed query in the {kind} URL {redacted(url)!r}"
        ) from exc
    return ParsedURL(url, kind, parts.scheme.lower(), path, query)


def redacted(url: str) -> str:
    """`url` with its password, if any, replaced by `***`: URLs appear in error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}").geturl()


def choice(*allowed: str) -> Callable[[str], str]:
    """An option converter accepting one of `allowed` (case-insensitive)."""

    def convert(raw: str) -> str:
        if raw.upper() not in allowed:
            raise ValueError(f"use one of {', '.join(allowed)}")
        return raw.upper()

    return convert
