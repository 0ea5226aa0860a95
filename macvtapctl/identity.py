"""The agent's identity, each name and default once (pure): what the admin side deploys and finds, and what the
agent runs with, must agree. Changing one here changes it everywhere."""

from __future__ import annotations

AGENT_NAME = "macvtapctl-agent"  # the DaemonSet, its ServiceAccount, and its app.kubernetes.io/name label
DEFAULT_NAMESPACE = "macvtap"
NAME_LABEL = "app.kubernetes.io/name"  # the agent's DaemonSet is found by AGENT_NAME under it (rules/device_plugins.py)
LABELS = {NAME_LABEL: AGENT_NAME, "app.kubernetes.io/part-of": "macvtapctl"}
METRICS_PORT = 9450  # /healthz /readyz /metrics /doctor /probe/dhcp
CNI_SOCKET = "/run/macvtapctl/cni.sock"  # where the shim finds the agent (the shim's default: SHIM_MARKER)
KUBELET_ROOT = "/var/lib/kubelet"
DEVICE_PLUGIN_DIR = f"{KUBELET_ROOT}/device-plugins"
POD_RESOURCES_SOCKET = f"{KUBELET_ROOT}/pod-resources/kubelet.sock"
CNI_BIN_DIR = "/opt/cni/bin"
QEMU_UID = 107  # qemu in KubeVirt's virt-launcher: the owner /dev/tapN is handed to
QEMU_GID = 107
# Where the agent container gets its service-account token, CA and namespace (a projected volume of its own).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
