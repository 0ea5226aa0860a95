"""Which proxy reaches the server when the kubeconfig names none: the environment's, by Go's rules, as kubectl.

kubectl (client-go, Go's net/http) reads HTTPS_PROXY for https servers and HTTP_PROXY for http ones, upper case
first, and goes direct to loopback addresses, to `localhost` and to every host NO_PROXY matches: `*`; an
address or CIDR; a name, which matches it and its subdomains (`.name`: only its subdomains); each optionally
with `:port`. A proxy without a scheme is http://.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit


def from_environment(server: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(proxy URL, the variable it came from) for `server`, or None to go direct."""
    u = urlsplit(server)
    host = (u.hostname or "").lower()
    port = str(u.port or (443 if u.scheme == "https" else 80))
    names = ("HTTPS_PROXY", "https_proxy") if u.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    var = next((n for n in names if env.get(n)), None)
    if var is None or not host or _loopback(host) or bypassed(host, port, env):
        return None
    proxy = env[var].strip()
    return (proxy if "://" in proxy else f"http://{proxy}"), var


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bypassed(host: str, port: str, env: Mapping[str, str]) -> bool:
    """NO_PROXY (else no_proxy) matches host:port."""
    value = env.get("NO_PROXY") or env.get("no_proxy") or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
                continue
            except ValueError:
                pass
        name, entry_port = _split_port(entry)
        if entry_port and entry_port != port:
            continue
        if address is not None:
            try:
                if address == ipaddress.ip_address(name.strip("[]")):
                    return True
            except ValueError:
                pass
        name = name[1:] if name.startswith("*.") else name
        if name.startswith("."):
            if host.endswith(name):
                return True
        elif host == name or host.endswith("." + name):
            return True
    return False


def _split_port(entry: str) -> tuple[str, str]:
    """`name:port`, `[v6]:port`; a bare IPv6 address has no port."""
    if entry.startswith("["):
        end = entry.find("]")
        rest = entry[end + 1:]
        return entry[:end + 1], rest[1:] if rest.startswith(":") else ""
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, port
    return entry, ""
