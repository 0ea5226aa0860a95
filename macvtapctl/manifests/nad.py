"""NetworkAttachmentDefinition for a macvtap network: only keys the macvtap CNI reads. What a NAD says (its
resource, its config, whose it is) is rules/nad.py's."""

from __future__ import annotations

import json
from typing import Any

from macvtapctl import validate
from macvtapctl.errors import UsageError
from macvtapctl.rules.nad import RESOURCE_ANNOTATION

CNI_VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_CNI_VERSION = "0.3.1"  # what upstream macvtap-cni examples use and its Go plugin supports


def check_cni_version(value: str) -> str:
    if value not in CNI_VERSIONS:
        raise UsageError(f'invalid --cni-version "{value}": must be one of {", ".join(CNI_VERSIONS)}')
    return value


def check_inputs(name: str, resource: str, *, mtu: int | None = None, cni_version: str = DEFAULT_CNI_VERSION) -> None:
    """Every rule on a NAD's inputs but the namespace: callers check them before asking where to write."""
    validate.check_dns_subdomain(name, "NAD name")
    validate.check_resource_name(resource)
    check_cni_version(cni_version)
    if mtu is not None:
        validate.check_mtu(mtu)


def render(name: str, namespace: str, resource: str, *, mtu: int | None = None, promisc: bool = False,
           cni_version: str = DEFAULT_CNI_VERSION) -> dict[str, Any]:
    check_inputs(name, resource, mtu=mtu, cni_version=cni_version)
    validate.check_dns_label(namespace, "namespace")
    config: dict[str, Any] = {"cniVersion": cni_version, "name": name, "type": "macvtap"}
    if mtu is not None:
        config["mtu"] = validate.check_mtu(mtu)
    if promisc:
        config["promiscMode"] = True
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {RESOURCE_ANNOTATION: validate.full_resource_name(resource)}},
        "spec": {"config": json.dumps(config)},
    }
