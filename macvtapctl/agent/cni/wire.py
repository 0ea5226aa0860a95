"""The shim <-> agent wire format (see shim/macvtap.c). Pure and bounded: the agent side is fuzzed.

request:  b"MVT1" | count | count x (len | b"KEY=VALUE") | len | stdin      (big-endian u32)
response: b"MVR1" | exit code | len | stdout | len | stderr
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

REQUEST_MAGIC = b"MVT1"
RESPONSE_MAGIC = b"MVR1"
MAX_ENV = 32
MAX_ENV_ENTRY = 16 * 1024
MAX_STDIN = 1 << 20
MAX_REQUEST = 4 + 4 + MAX_ENV * (4 + MAX_ENV_ENTRY) + 4 + MAX_STDIN


class WireError(ValueError):
    """A malformed or oversized frame."""


@dataclass(frozen=True)
class Call:
    env: dict[str, str]
    stdin: bytes


class Reader:
    """Incremental decoder: feed() bytes, get a Call once complete. Never buffers beyond the limits."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> Call | None:
        self.buf += data
        if len(self.buf) > MAX_REQUEST:
            raise WireError("request too large")
        return decode_request(bytes(self.buf), partial=True)


def _u32(buf: bytes, pos: int) -> tuple[int, int] | None:
    if pos + 4 > len(buf):
        return None
    return struct.unpack_from(">I", buf, pos)[0], pos + 4


def _field(buf: bytes, pos: int, limit: int, too_long: str) -> tuple[bytes, int] | None:
    """A length-prefixed field at pos: (bytes, position after it), None when more bytes are needed."""
    got = _u32(buf, pos)
    if got is None:
        return None
    length, pos = got
    if length > limit:
        raise WireError(too_long)
    if pos + length > len(buf):
        return None
    return buf[pos:pos + length], pos + length


def decode_request(buf: bytes, *, partial: bool = False) -> Call | None:
    """Decode a whole request; with partial=True, None means 'need more bytes'. Raises WireError."""

    def need() -> None:
        if not partial:
            raise WireError("truncated request")

    if len(buf) < 4:
        if buf and not REQUEST_MAGIC.startswith(buf):
            raise WireError("bad magic")
        need()
        return None
    if buf[:4] != REQUEST_MAGIC:
        raise WireError("bad magic")
    got = _u32(buf, 4)
    if got is None:
        need()
        return None
    count, pos = got
    if count > MAX_ENV:
        raise WireError(f"too many environment entries ({count})")
    env: dict[str, str] = {}
    for _ in range(count):
        field = _field(buf, pos, MAX_ENV_ENTRY, "environment entry too long")
        if field is None:
            need()
            return None
        raw, pos = field
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("environment entry is not UTF-8") from None
        key, sep, value = text.partition("=")
        if not sep or not key.startswith("CNI_"):
            raise WireError("environment entry is not CNI_KEY=VALUE")
        env[key] = value
    field = _field(buf, pos, MAX_STDIN, "stdin too large")
    if field is None:
        need()
        return None
    stdin, pos = field
    if pos != len(buf):
        raise WireError("trailing bytes after the request")
    return Call(env, bytes(stdin))


def encode_request(env: dict[str, str], stdin: bytes) -> bytes:
    parts = [REQUEST_MAGIC, struct.pack(">I", len(env))]
    for key, value in env.items():
        entry = f"{key}={value}".encode()
        parts += [struct.pack(">I", len(entry)), entry]
    parts += [struct.pack(">I", len(stdin)), stdin]
    return b"".join(parts)


def encode_response(code: int, stdout: bytes, stderr: bytes = b"") -> bytes:
    return b"".join([RESPONSE_MAGIC, struct.pack(">II", code, len(stdout)), stdout,
                     struct.pack(">I", len(stderr)), stderr])


def decode_response(buf: bytes) -> tuple[int, bytes, bytes]:
    if buf[:4] != RESPONSE_MAGIC or len(buf) < 12:
        raise WireError("bad response")
    code, out_len = struct.unpack_from(">II", buf, 4)
    out = buf[12:12 + out_len]
    (err_len,) = struct.unpack_from(">I", buf, 12 + out_len)
    err = buf[16 + out_len:16 + out_len + err_len]
    return code, out, err
