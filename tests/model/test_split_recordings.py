"""Property: however the HTTP body of a real recording is cut, the parser's result is the same.

Every 2xx recording in the vendor-streams folder is parsed whole, then cut at byte positions
hypothesis picks (inside UTF-8 characters, inside lines and JSON strings, between CR and LF,
one byte at a time). The chunks, each one of them, and the typed error that ended the stream
if any, must be identical. The sans-IO check runs many splits per recording; the HTTP check
sends the body through the real replay server as chunked transfer-encoding pieces cut where
hypothesis says, and compares what the provider yields with the unsplit parse.
"""

from __future__ import annotations

import zlib

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chronos.errors import ChronosError
from chronos.model import ChatRequest, ChatResponse, Message, RetryPolicy
from tests.model.parsing import Outcome, parse
from tests.model.recordings import NEVER, PROVIDERS, Recording, load_all, recording_id
from tests.model.replay import ReplayServer, Reply

RECORDINGS = [r for r in load_all()
              if r.status < 400 and r.api in PROVIDERS and r.api not in NEVER]
REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])


def _parse(recording: Recording, pieces: list[bytes]) -> Outcome:
    provider = PROVIDERS[recording.api](recording, "http://127.0.0.1:9")
    return parse(provider, recording.content_type, pieces)


def _cut(body: bytes, positions: list[int]) -> list[bytes]:
    cuts = sorted({p % (len(body) + 1) for p in positions})
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def test_there_are_recordings_to_split() -> None:
    assert RECORDINGS, "no 2xx recordings of a registered api in the recordings folder"


@pytest.mark.parametrize("recording", RECORDINGS, ids=recording_id)
def test_a_recording_parses_the_same_however_it_is_split(recording: Recording) -> None:
    body = recording.body
    whole = _parse(recording, [body])
    assert whole.chunks or whole.error is not None
    # One byte at a time: every boundary at once.
    byte_by_byte = _parse(recording, [body[i : i + 1] for i in range(len(body))])
    assert byte_by_byte.chunks == whole.chunks
    assert byte_by_byte.error_kind == whole.error_kind

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(positions=st.lists(st.integers(min_value=0), max_size=64))
    def split_anywhere(positions: list[int]) -> None:
        split = _parse(recording, _cut(body, positions))
        assert split.chunks == whole.chunks
        assert split.error_kind == whole.error_kind

    split_anywhere()


# Over real HTTP: fewer examples (each is a request), a sample of recordings of every api.
_SAMPLE = sorted({r.api: r for r in RECORDINGS}.values(), key=recording_id) + RECORDINGS[::12]


async def _stream(recording: Recording, reply: Reply, server: ReplayServer) -> Outcome:
    script = server.script(reply)
    provider = PROVIDERS[recording.api](recording, script.base_url)
    provider.retry = RetryPolicy(max_retries=0)
    chunks: list[ChatResponse] = []
    error: ChronosError | None = None
    async with provider:
        try:
            with anyio.fail_after(10):
                async for chunk in provider.stream_chat(REQUEST):
                    chunks.append(chunk)
        except ChronosError as exc:
            error = exc
    return Outcome(tuple(chunks), error)


@pytest.mark.parametrize("recording", _SAMPLE, ids=recording_id)
def test_a_recording_streams_the_same_over_http_however_it_is_chunked(
    recording: Recording, replay_server: ReplayServer
) -> None:
    whole = _parse(recording, [recording.body])

    @settings(max_examples=5, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(seed=st.integers(0, 2**32 - 1), max_piece=st.sampled_from([2, 7, 48, 4096]))
    def chunked_anywhere(seed: int, max_piece: int) -> None:
        reply = Reply(status=recording.status, body=recording.body,
                      headers={"content-type": recording.content_type},
                      seed=seed ^ zlib.crc32(recording.body), max_piece=max_piece)
        streamed = anyio.run(_stream, recording, reply, replay_server)
        assert streamed.chunks == whole.chunks
        # Messages differ (`_stream` names the provider); the kind of error may not.
        assert type(streamed.error) is type(whole.error)

    chunked_anywhere()
