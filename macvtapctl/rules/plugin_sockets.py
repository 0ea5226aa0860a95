"""Which macvtap device plugins the kubelet is connected to on a node, read from /proc/net/unix. Pure: text in.

Once a plugin has registered, the kubelet holds a gRPC connection to its socket (the ListAndWatch stream) for
as long as it keeps it as an endpoint of the resource; its Register handler returns only after it has dialled
that socket. The plugin's end of that connection is an accepted socket: /proc/net/unix shows it with the path
the plugin bound, state 03 (connected), beside the listening row (flag __SO_ACCEPTCON, state 01). The kubelet's
own end is unbound: no path. So "connected" is: a listening row and a connected row with the same path.

Sockets are named by resource: upstream macvtap-cni's device-plugin manager binds
`<dir>/macvtap.network.kubevirt.io_<name>`, the agent `<dir>/macvtapctl-<name>.sock` (bound as
`.macvtapctl-<name>.sock.binding` and renamed into place: the kernel keeps the name it was bound under, and
gRPC binds it as `///dir/...`).
Upstream's are recognized in any directory: the path is the one bound in its own mount namespace, where a kubelet
with another root dir is still mounted at /var/lib/kubelet/device-plugins.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from macvtapctl.validate import RESOURCE_PREFIX

OUR_PREFIX = "macvtapctl-"  # the agent's socket names (agent/deviceplugin/plugin.py socket_name)
UPSTREAM_PREFIX = f"{RESOURCE_PREFIX}_"  # device-plugin-manager: <resource namespace>_<plugin name>
_BINDING = ".binding"
_ACCEPTCON = 0x10000  # __SO_ACCEPTCON: a listening socket
_UNCONNECTED, _CONNECTED = "01", "03"  # SS_UNCONNECTED, SS_CONNECTED


@dataclass(frozen=True)
class UnixSocket:
    path: str
    listening: bool
    connected: bool


def parse_unix(text: str) -> list[UnixSocket]:
    """The rows of /proc/net/unix that have a path (`Num RefCount Protocol Flags Type St Inode Path`; the path,
    last, may hold spaces). Abstract sockets (`@name`) and unbound ones are left out."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) < 8 or fields[7].startswith("@"):
            continue
        try:
            flags = int(fields[3], 16)
        except ValueError:
            continue
        state = fields[5]
        found.append(UnixSocket(_clean(fields[7]), bool(flags & _ACCEPTCON) and state == _UNCONNECTED,
                                state == _CONNECTED))
    return found


def _clean(path: str) -> str:
    """The path as the file system resolves it: the kernel shows the bytes bound, and gRPC's C core binds
    `unix:///dir/x` as `///dir/x` (measured: grpcio, the agent's plugin)."""
    return re.sub("/+", "/", path)


def connected_paths(sockets: Iterable[UnixSocket]) -> set[str]:
    """Paths a server listens on and has accepted at least one connection on."""
    rows = list(sockets)
    listening = {s.path for s in rows if s.listening}
    return {s.path for s in rows if s.connected and s.path in listening}


def resource_of(path: str, plugin_dir: str) -> tuple[str, bool] | None:
    """(resource, the agent's own) for a macvtap device-plugin socket path; None for any other socket."""
    path = _clean(path)
    base = posixpath.basename(path)
    if base.startswith("." + OUR_PREFIX) and base.endswith(".sock" + _BINDING):
        base = base[1:-len(_BINDING)]
    if base.startswith(OUR_PREFIX) and base.endswith(".sock"):
        # Ours only in our plugin dir: elsewhere, it is no socket this node's kubelet dials for us.
        name = base[len(OUR_PREFIX):-len(".sock")]
        return (f"{RESOURCE_PREFIX}/{name}", True) if name and posixpath.dirname(path) == _clean(plugin_dir).rstrip(
            "/") else None
    if base.startswith(UPSTREAM_PREFIX) and len(base) > len(UPSTREAM_PREFIX):
        return f"{RESOURCE_PREFIX}/{base[len(UPSTREAM_PREFIX):]}", False
    return None


def kubelet_plugins(proc_net_unix: str, plugin_dir: str, advertised: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The node report's `plugins`: for each resource the agent advertises (a plugin of its own serves it) and each
    resource another macvtap plugin is connected for, {"advertised": the agent serves it, "ours": the kubelet is
    connected to the agent's socket, "others": the other plugins' sockets the kubelet is connected to}."""
    plugins: dict[str, dict[str, Any]] = {r: {"advertised": True, "ours": False, "others": []} for r in advertised}
    for path in sorted(connected_paths(parse_unix(proc_net_unix))):
        found = resource_of(path, plugin_dir)
        if found is None:
            continue
        resource, ours = found
        entry = plugins.setdefault(resource, {"advertised": False, "ours": False, "others": []})
        if ours:
            entry["ours"] = True
        else:
            entry["others"].append(path)
    return dict(sorted(plugins.items()))
