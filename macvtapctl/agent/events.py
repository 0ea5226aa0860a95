"""What the migration hand-off did, as Kubernetes Events on the VMI (issue 39): `kubectl describe vmi NAME` and
`kubectl get events` show, beside KubeVirt's own migration events, when this node took the VM's source link out of
the L2 domain (Normal MacvtapHandOff) and when it had to put it back (Warning MacvtapHandOffReverted: a duplicate MAC
on the LAN, or a migration that failed after its guest announced).

The pod is known from the CNI ADD (K8S_POD_NAMESPACE, K8S_POD_NAME); a KubeVirt launcher pod's VMI from its name
(rules/launcher.py). A link the agent adopted (attached by another plugin before a take-over) has no pod known: no
Event, the node report and the log still say it. Posting never delays the hand-off: a queue and a thread of its own;
a full queue or a refusal is logged (once per kind of failure), never retried forever.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import queue
import threading
import urllib.parse
from typing import Any

from macvtapctl.agent.apiserver import ApiUnavailable, InCluster
from macvtapctl.agent.handoff import REVERTED
from macvtapctl.rules.launcher import vmi_of_launcher

log = logging.getLogger("macvtapctl.agent.events")
COMPONENT = "macvtapctl-agent"
QUEUE = 64


def event(pod: tuple[str, str], reason: str, message: str, node: str, now: datetime.datetime) -> dict[str, Any]:
    """A core/v1 Event about the VMI of the pod (namespace, name); about the pod itself when it is no KubeVirt
    launcher."""
    namespace, name = pod
    vmi = vmi_of_launcher(name)
    involved = ({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance", "name": vmi,
                 "namespace": namespace} if vmi else
                {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace})
    at = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": involved, "reason": reason, "message": message,
            "type": "Warning" if reason == REVERTED else "Normal",
            "source": {"component": COMPONENT, "host": node},
            "firstTimestamp": at, "lastTimestamp": at, "count": 1}


class EventRecorder(threading.Thread):
    def __init__(self, node: str, api: InCluster | None = None) -> None:
        super().__init__(name="events", daemon=True)
        self.node, self.api = node, api or InCluster()
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE)
        self.posted = 0
        self._said: set[str] = set()

    def tell(self, pod: tuple[str, str] | None, reason: str, message: str) -> None:
        """Queue an Event for the pod's VMI (nothing for an unknown pod); never blocks the caller."""
        if pod is None:
            return
        try:
            self.queue.put_nowait(event(pod, reason, message, self.node, datetime.datetime.now(datetime.UTC)))
        except queue.Full:
            self._once("full", "the Event queue is full: a migration Event was dropped")

    def run(self) -> None:
        while (ev := self.queue.get()) is not None:
            ns = urllib.parse.quote(ev["metadata"]["namespace"], safe="")
            try:
                conn, resp = self.api.connect("POST", f"/api/v1/namespaces/{ns}/events", timeout=10, body=ev)
                resp.read()
                conn.close()
                self.posted += 1
            except ApiUnavailable as exc:
                why = "forbidden" if exc.status == 403 else "unavailable"
                hint = (" (the agent's ClusterRole must allow create events: macvtapctl install writes it)"
                        if exc.status == 403 else "")
                self._once(why, f"a migration Event for {ev['involvedObject']['name']} was not posted: {exc}{hint}")

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    def _once(self, key: str, text: str) -> None:
        if key not in self._said:
            self._said.add(key)
            log.warning("%s", text)
