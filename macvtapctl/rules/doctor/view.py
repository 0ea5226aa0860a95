"""What a Snapshot means, derived once per run: the facts several checks (and `status`) read, each judged by one
rule. Built after the snapshot is read; no check derives them again."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from macvtapctl.dig import dig
from macvtapctl.rules import device_plugins, dpconfig, in_use, kubevirt, nodes
from macvtapctl.rules import nad as nadr
from macvtapctl.rules.doctor.snapshot import Snapshot

# Report checks that judge the configuration: a report of an older configuration says nothing about the current one.
CONFIG_JUDGED = ("dp-config", "resource-capacity", "kind-dev", "l2-nested-lower")


@dataclass(frozen=True)
class View:
    configmap: dict[str, Any] | None  # the device-plugin ConfigMap in effect (CNAO's pointer followed)
    config: dpconfig.Config | None  # its document, parsed as upstream reads it
    config_error: str | None  # why that document cannot be read
    kubevirt: dict[str, Any] | None  # the KubeVirt CR (None: none, or several)
    kubevirt_version: tuple[int, int, int] | None  # its observed version
    bindings: dict[str, Any]  # the network bindings it registers, and those HyperConverged will propagate
    macvtap_bindings: list[str]  # of those, the macvtap ones (kubevirt.is_macvtap_binding), sorted
    plugins: list[device_plugins.Plugin]  # the macvtap device-plugin DaemonSets (agent and macvtap-cni)
    macvtap_nads: list[tuple[dict[str, Any], str | None]]  # each macvtap NAD and the resource it requests
    holders: dict[tuple[str, str], list[str]]  # (node, resource) -> a pod per device held (in_use's rule)
    advertised: dict[str, dict[str, int]]  # node -> resource -> devices it advertises (nodes.advertised)
    stale_reports: frozenset[str]  # nodes whose report judged another configuration than the one in effect

    @classmethod
    def of(cls, s: Snapshot) -> View:
        plugins = [p for p in (device_plugins.of(ds) for ds in [*s.agents, *s.upstream]) if p is not None]
        cm, cfg, broken = _config_in_effect(s, plugins)
        kv = s.kubevirts[0] if len(s.kubevirts) == 1 else None
        found = dig(kv, "spec", "configuration", "network", "binding") if kv else None
        bindings = {**(dict(found) if isinstance(found, dict) else {}), **s.hco_bindings}
        current = dpconfig.digest((cm.get("data") or {}).get(dpconfig.CONFIG_KEY)) if cm else None
        stale = frozenset(node for node, report in s.reports.items()
                          if current is not None and (judged := (report or {}).get("configDigest")) is not None
                          and judged != current)
        return cls(configmap=cm, config=cfg, config_error=broken, kubevirt=kv,
                   kubevirt_version=kubevirt.parse_version(kubevirt.observed_version_of(kv)) if kv else None,
                   bindings=bindings, macvtap_bindings=kubevirt.macvtap_bindings(bindings), plugins=plugins,
                   macvtap_nads=[(n, nadr.resource_of(n)) for n in s.nads if nadr.is_macvtap(n)],
                   holders=in_use.holders(s.live),
                   advertised={n["metadata"]["name"]: nodes.advertised(n) for n in s.nodes},
                   stale_reports=stale)

    def lower_of(self, resource: str | None) -> str | None:
        """The lower device the configuration in effect gives a resource (None: not configured)."""
        if self.config is None or resource is None:
            return None
        if self.config.expose_all:
            return resource  # [] exposes each NIC under its own name
        entry = self.config.find(resource)
        return str(entry.get("lowerDevice")) if entry else None

    def report_checks(self, s: Snapshot, check_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """The node reports' results for one finding id, only what was measured (not skipped) against the current
        configuration."""
        for node, report in sorted(s.reports.items()):
            if check_id in CONFIG_JUDGED and node in self.stale_reports:
                continue
            for c in (report or {}).get("checks") or []:
                if c.get("id") == check_id and c.get("status") != "skipped":
                    yield node, c


def _config_in_effect(s: Snapshot, plugins: list[device_plugins.Plugin]
                      ) -> tuple[dict[str, Any] | None, dpconfig.Config | None, str | None]:
    """The ConfigMap in effect, its parsed config, or why it cannot be read."""
    cms = s.configmaps
    if s.cnao_configmap:
        cms = [c for c in cms if c["metadata"]["name"] == s.cnao_configmap] or cms
    if not cms:
        return None, None, None
    # Several: the one a device plugin reads (the agent's first), as that is what the nodes serve.
    read = [(p.namespace, p.configmap) for p in sorted(plugins, key=lambda p: p.kind != device_plugins.AGENT)]
    cm = next((c for key in read for c in cms if (c["metadata"]["namespace"], c["metadata"]["name"]) == key),
              cms[0])
    try:
        return cm, dpconfig.parse((cm.get("data") or {}).get(dpconfig.CONFIG_KEY),
                                  where=f"ConfigMap {cm['metadata']['name']}"), None
    except dpconfig.MalformedConfigError as exc:
        return cm, None, exc.message
