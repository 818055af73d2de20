"""HTTP error bodies: redacted whole, then cut, wherever the cut falls."""

from __future__ import annotations

import httpx
import orjson
import pytest

from chronos.errors import AuthenticationError
from chronos.model._http import _BODY_LIMIT, error_for_status

# A key with no prefix `redact` knows: only the provider's own secret matches it.
SECRET = "q7Zp3LmN9xKd2VbT8rYw4HcJ"


def windows(secret: str, size: int = 4) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def body_error(body: bytes) -> AuthenticationError:
    error = error_for_status(httpx.Response(401), body, provider="openai", model="m",
                             secret=SECRET)
    assert isinstance(error, AuthenticationError)
    return error


@pytest.mark.parametrize("padding", ["x", "é", "🔑"])  # 1, 2 and 4 bytes a character
def test_a_key_straddling_the_cut_keeps_none_of_its_characters(padding: str) -> None:
    # Every position of the limit inside the key, and just before and after it, counting the
    # limit in bytes or in characters.
    first = _BODY_LIMIT // len(padding.encode()) - len(SECRET) - 1
    for offset in range(first, _BODY_LIMIT + 2):
        error = body_error(f"{padding * offset}{SECRET}{'y' * 50}".encode())
        shown = error.body + str(error) + repr(error)
        assert not [w for w in windows(SECRET) if w in shown], offset
        assert len(error.body) <= _BODY_LIMIT


def test_a_json_body_straddling_the_cut_is_redacted_too() -> None:
    for offset in range(_BODY_LIMIT - len(SECRET) - 40, _BODY_LIMIT + 2):
        message = "k" * offset + f"Incorrect API key provided: {SECRET}"
        error = body_error(orjson.dumps({"error": {"message": message, "code": "bad_key"}}))
        shown = error.body + str(error) + repr(error)
        assert not [w for w in windows(SECRET) if w in shown], offset
        assert "REDACTED" in str(error)


def test_a_known_key_shape_straddling_the_cut_is_redacted() -> None:
    key = "sk-proj-" + "A1b2C3d4" * 6
    for offset in range(_BODY_LIMIT - len(key) - 1, _BODY_LIMIT + 2):
        error = body_error(f"{'x' * offset}{key} trailing".encode())
        assert not [w for w in windows(key[8:]) if w in error.body], offset


def test_a_short_body_is_kept_whole_and_a_long_one_is_cut() -> None:
    assert body_error(b"plain failure").body == "plain failure"
    assert body_error(b"z" * 10_000).body == "z" * _BODY_LIMIT
