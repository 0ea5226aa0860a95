"""What doctor reads: the raw API objects and each node agent's report, as ops/doctor.py gathered them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from macvtapctl.rules.injector import Proof


@dataclass
class Snapshot:
    """What doctor read: raw API objects, plus each node agent's report (None: no report, with the reason)."""

    server_version: str | None = None
    openshift: bool = False
    kubevirts: list[dict[str, Any]] = field(default_factory=list)
    configmaps: list[dict[str, Any]] = field(default_factory=list)  # every macvtap-deviceplugin-config
    cnao_configmap: str | None = None  # spec.macvtap.devicePluginConfig of the NetworkAddonsConfig, if any
    agents: list[dict[str, Any]] = field(default_factory=list)  # our agent DaemonSets
    upstream: list[dict[str, Any]] = field(default_factory=list)  # macvtap-cni DaemonSets reading the ConfigMap
    agent_pods: list[dict[str, Any]] = field(default_factory=list)  # pods of both
    nodes: list[dict[str, Any]] = field(default_factory=list)
    nads: list[dict[str, Any]] = field(default_factory=list)
    vms: list[dict[str, Any]] = field(default_factory=list)
    vmis: list[dict[str, Any]] = field(default_factory=list)
    launchers: list[dict[str, Any]] = field(default_factory=list)  # virt-launcher pods
    live: list[dict[str, Any]] = field(default_factory=list)  # pods not finished (in_use.FIELD_SELECTOR)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # of those, the ones not Running
    events: list[dict[str, Any]] = field(default_factory=list)  # Warning events in the namespaces of `waiting`/VMIs
    events_error: str | None = None  # why events could not be read
    field_manager: str = "macvtapctl"  # whose NADs `nad create` may rewrite without --force
    dhcp_resource: str | None = None  # doctor --probe-dhcp RESOURCE
    dhcp_probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> the agent's probe answer
    hco_bindings: dict[str, Any] = field(default_factory=dict)  # what HyperConverged will propagate to KubeVirt
    injection: Proof | None = None  # the dry-run pod's answer (ops/injector.prove); None: not asked
    reports: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # node -> agent report
    report_errors: dict[str, str] = field(default_factory=dict)  # node -> why there is no report
