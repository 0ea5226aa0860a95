"""XXH64 (seed 0), as cespare/xxhash Sum64String: how macvtap-cni names a device's temporary link.

Pure Python: device IDs are a few dozen bytes, so speed does not matter and the agent needs no C extension.
"""

from __future__ import annotations

import struct

P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5
M = (1 << 64) - 1


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * P2) & M
    return (_rotl(acc, 31) * P1) & M


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * P1 + P4) & M


def xxh64(data: bytes, seed: int = 0) -> int:
    n = len(data)
    pos = 0
    if n >= 32:
        v1 = (seed + P1 + P2) & M
        v2 = (seed + P2) & M
        v3 = seed & M
        v4 = (seed - P1) & M
        while pos + 32 <= n:
            a, b, c, d = struct.unpack_from("<QQQQ", data, pos)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            pos += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & M
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while pos + 8 <= n:
        (k,) = struct.unpack_from("<Q", data, pos)
        h ^= _round(0, k)
        h = (_rotl(h, 27) * P1 + P4) & M
        pos += 8
    if pos + 4 <= n:
        (k,) = struct.unpack_from("<I", data, pos)
        h ^= (k * P1) & M
        h = (_rotl(h, 23) * P2 + P3) & M
        pos += 4
    while pos < n:
        h ^= (data[pos] * P5) & M
        h = (_rotl(h, 11) * P1) & M
        pos += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    h ^= h >> 32
    return h


def temporary_link_name(device_id: str) -> str:
    """`mvt` + 12 hex digits: the low 48 bits of xxhash64(deviceID), exactly as upstream."""
    return "mvt%012x" % (xxh64(device_id.encode()) & 0xFFFFFFFFFFFF)
