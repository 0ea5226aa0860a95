"""Which VMI a virt-launcher pod runs, from the pod's name alone (the agent knows a pod by the CNI ADD's
K8S_POD_NAME, nothing more). KubeVirt names the launcher pod with generateName `virt-launcher-<vmi>-`
(pkg/virt-controller/services/template.go), and the API server appends 5 characters of its own alphabet
(k8s.io/apimachinery util/rand: consonants without vowels, and digits without 0, 1, 3)."""

from __future__ import annotations

import re

PREFIX = "virt-launcher-"
_LAUNCHER = re.compile(rf"^{PREFIX}(?P<vmi>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)-[bcdfghjklmnpqrstvwxz2456789]{{5}}$")


def vmi_of_launcher(pod_name: str) -> str | None:
    """The VMI's name, or None for a pod that is not named as KubeVirt names its launchers."""
    m = _LAUNCHER.match(pod_name)
    return m.group("vmi") if m else None
