"""The agent side of the shim's wire format, fuzzed: malformed and oversized frames never crash it."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macvtapctl.agent.cni import wire

env_keys = st.from_regex(r"CNI_[A-Z_]{1,20}", fullmatch=True)
envs = st.dictionaries(env_keys, st.text(max_size=200), max_size=wire.MAX_ENV)


@given(envs, st.binary(max_size=4096))
def test_round_trip(env: dict[str, str], stdin: bytes) -> None:
    frame = wire.encode_request(env, stdin)
    assert wire.decode_request(frame) == wire.Call(env, stdin)


@given(envs, st.binary(max_size=2048), st.lists(st.integers(min_value=1, max_value=64), max_size=50))
def test_incremental_reader_in_any_chunking(env: dict[str, str], stdin: bytes, cuts: list[int]) -> None:
    frame = wire.encode_request(env, stdin)
    reader = wire.Reader()
    pos, result = 0, None
    for n in cuts:
        if pos >= len(frame):
            break
        result = reader.feed(frame[pos:pos + n])
        pos += n
        if result is not None:
            break
    if pos < len(frame):
        result = reader.feed(frame[pos:])
    assert result == wire.Call(env, stdin)


@settings(max_examples=500)
@given(st.binary(max_size=512))
def test_garbage_never_crashes(data: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        wire.decode_request(data, partial=True)


@given(envs, st.binary(max_size=256), st.integers(min_value=0, max_value=200))
def test_truncation_is_detected(env: dict[str, str], stdin: bytes, cut: int) -> None:
    frame = wire.encode_request(env, stdin)
    if cut >= len(frame):
        return
    truncated = frame[:len(frame) - 1 - cut]
    assert wire.decode_request(truncated, partial=True) is None
    with pytest.raises(wire.WireError):
        wire.decode_request(truncated)


def test_limits() -> None:
    with pytest.raises(wire.WireError, match="too many"):
        wire.decode_request(b"MVT1" + struct.pack(">I", wire.MAX_ENV + 1), partial=True)
    with pytest.raises(wire.WireError, match="too long"):
        wire.decode_request(b"MVT1" + struct.pack(">II", 1, wire.MAX_ENV_ENTRY + 1), partial=True)
    with pytest.raises(wire.WireError, match="stdin too large"):
        wire.decode_request(b"MVT1" + struct.pack(">II", 0, wire.MAX_STDIN + 1), partial=True)
    with pytest.raises(wire.WireError, match="bad magic"):
        wire.decode_request(b"HTTP/1.1", partial=True)
    with pytest.raises(wire.WireError, match="CNI_KEY=VALUE"):
        wire.decode_request(wire.encode_request({"PATH": "/bin"}, b""))
    with pytest.raises(wire.WireError, match="trailing"):
        wire.decode_request(wire.encode_request({}, b"x") + b"extra")
    reader = wire.Reader()
    with pytest.raises(wire.WireError, match="too large"):
        reader.feed(b"MVT1" + b"\0" * (wire.MAX_REQUEST + 1))


def test_response_round_trip() -> None:
    assert wire.decode_response(wire.encode_response(7, b'{"a":1}', b"warn")) == (7, b'{"a":1}', b"warn")
