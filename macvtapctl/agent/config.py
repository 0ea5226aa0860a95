"""What the agent runs with, and its defaults — declared once: `macvtapctl agent`'s flags take their defaults from
here (cli/agent.py), and tests build it directly. Light (no netlink, no gRPC): the CLI imports it for --help."""

from __future__ import annotations

from dataclasses import dataclass

from macvtapctl import identity


@dataclass
class AgentConfig:
    cni_socket: str = identity.CNI_SOCKET
    gc_min_age: float = 10.0
    workers: int = 16
    tap_dir: str = "/dev"
    device_plugin: bool = True
    plugin_dir: str = identity.DEVICE_PLUGIN_DIR
    config_file: str | None = None
    veth_is_physical: bool = False
    metrics_host: str = "0.0.0.0"  # noqa: S104 - probes come from the kubelet to the node's address
    metrics_port: int = identity.METRICS_PORT  # 0: no health/metrics server
    pod_resources_socket: str = identity.POD_RESOURCES_SOCKET
    reclaim_interval: float = 10.0  # 0: reclaim only on CNI GC
    node_name: str = ""  # for the doctor report (the DaemonSet sets NODE_NAME)
    cni_bin_dir: str | None = None  # where the shim was installed, checked by the doctor report
    report_interval: float = 60.0  # node checks for `doctor` (GET /doctor); 0: none
    configmap: tuple[str, str] | None = None  # (namespace, name) followed through the API; config_file: fallback


DEFAULTS = AgentConfig()
