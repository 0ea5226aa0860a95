"""The node agent (`macvtapctl agent`), one process per node:

- cni/           the CNI half: the socket server behind the static shim, its wire format, the CNI protocol and
                 the datapath (ADD/DEL/CHECK/STATUS/GC on real links);
- deviceplugin/  the kubelet device plugin: one gRPC server per resource, Allocate, the link watcher, the
                 pod-resources client;
- netlink/       the node's links and network namespaces;
- link_name.py, link_registry.py   the two things both halves share: how a device's temporary link is named,
                 and who may touch which link;
- daemon.py (wiring), observability.py (/healthz /readyz /metrics), check.py (`agent check`), cni_bin.py
  (installing the shim into the CNI bin dir).
"""
