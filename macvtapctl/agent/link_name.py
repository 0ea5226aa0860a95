"""How a device's temporary link on the node is named — the one rule the device plugin (Allocate creates it)
and the CNI (ADD finds it) must agree on, with each other and with upstream macvtap-cni (iface_name.go):
`mvt` + the low 48 bits of XXH64(deviceID) in hex, 15 characters (IFNAMSIZ)."""

from __future__ import annotations

import xxhash

PREFIX = "mvt"


def temporary_link_name(device_id: str) -> str:
    return f"{PREFIX}{xxhash.xxh64_intdigest(device_id.encode()) & 0xFFFFFFFFFFFF:012x}"
