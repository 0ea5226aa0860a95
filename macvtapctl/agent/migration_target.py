"""Is the pod a CNI ADD attaches a link for a live migration's target? Asked of the API server at ADD, for
KubeVirt launcher pods only (rules/launcher.py), so that the link is attached parked: down until its guest runs
on this node (agent/handoff.py, docs/migration.md).

Why at ADD: a target link that is up from the start draws this node's other VMs' frames for the VM's MAC into
it (bridge mode delivers locally) while the guest still runs on the source node: they lose the VM for the whole
migration (measured 4.5-5.0 s under KubeVirt). Down, the link is out of the NIC's bridge and their frames go to
the LAN and the source node.

An ADD never fails or waits long because of this: any answer but a pod that carries KubeVirt's migration label
(no token, API unreachable, forbidden, a slow answer) attaches the link up, as before, and says why once per kind.
"""

from __future__ import annotations

import json
import logging
import urllib.parse

from macvtapctl.agent.apiserver import ApiUnavailable, InCluster
from macvtapctl.rules.launcher import is_migration_target, vmi_of_launcher

log = logging.getLogger(__name__)
TIMEOUT = 1.0  # seconds: the ADD waits no longer for the answer (then the link is attached up)


class TargetLookup:
    def __init__(self, api: InCluster | None = None) -> None:
        self.api = api or InCluster()
        self._said: set[str] = set()

    def __call__(self, pod: tuple[str, str] | None) -> bool:
        if pod is None or vmi_of_launcher(pod[1]) is None:
            return False  # not a KubeVirt launcher: no question to ask
        ns, name = (urllib.parse.quote(part, safe="") for part in pod)
        try:
            conn, resp = self.api.connect("GET", f"/api/v1/namespaces/{ns}/pods/{name}", timeout=TIMEOUT)
            try:
                doc = json.loads(resp.read(1024 * 1024))
            finally:
                conn.close()
        except (ApiUnavailable, OSError, ValueError) as exc:
            status = getattr(exc, "status", None)
            hint = (" (the agent's ClusterRole must allow get pods: macvtapctl install writes it)"
                    if status == 403 else "")
            key = "forbidden" if status == 403 else type(exc).__name__
            if key not in self._said:
                self._said.add(key)
                log.warning("cannot tell whether %s/%s is a migration target, so its link is attached up (this "
                            "node's other VMs lose a migrating VM until it runs here): %s%s", pod[0], pod[1], exc, hint)
            return False
        return is_migration_target(doc)
