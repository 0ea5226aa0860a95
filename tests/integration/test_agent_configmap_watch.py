"""The agent follows its ConfigMap through the real API server with the privilege `install` gives it: the Role of
manifests/agent.py (get/list/watch on that one ConfigMap, by name) and a token the API server issues for the
agent's ServiceAccount (TokenRequest, as the kubelet projects it)."""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macvtapctl import identity
from macvtapctl.agent.configmap_watch import ConfigMapWatch
from macvtapctl.agent.deviceplugin.config_source import API, FILE, ConfigSource
from macvtapctl.kube.errors import Request
from macvtapctl.kube.resources import CONFIGMAP, NAMESPACE, ROLE, ROLE_BINDING, SERVICE_ACCOUNT, Resource
from macvtapctl.manifests import agent as agentm

NS = "watch-agent"
CM = "macvtap-deviceplugin-config"
KEY = "DP_MACVTAP_CONF"
ONE = '[{"name": "dp", "lowerDevice": "eth0"}]'
TWO = '[{"name": "dp", "lowerDevice": "eth0"}, {"name": "dp2", "lowerDevice": "eth1"}]'


def _token(k: Any, ns: str, sa: str) -> str:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}
    out = k.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                    Request("create", Resource("", "v1", "serviceaccounts/token", "TokenRequest"), ns, sa), body=body)
    return str(out["status"]["token"])


def _cm(data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CM, "namespace": NS}, "data": {KEY: data}}


@pytest.fixture
def agent_identity(control_plane: Any, tmp_path: Path) -> Iterator[Path]:
    """The agent's ServiceAccount, Role and RoleBinding as install writes them; its token and CA in a directory
    laid out like the projected volume."""
    opts = agentm.InstallOptions(namespace=NS, configmap=CM)
    objs = [(SERVICE_ACCOUNT, agentm.service_account(opts)), (ROLE, agentm.role(opts)),
            (ROLE_BINDING, agentm.role_binding(opts))]
    with control_plane.kube() as k:
        if k.get_or_none(NAMESPACE, NS) is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for res, obj in [*objs, (CONFIGMAP, _cm(ONE))]:
            if k.get_or_none(res, obj["metadata"]["name"], NS) is not None:
                k.delete(res, obj["metadata"]["name"], NS)
            k.create(res, obj, NS)
        sa_dir = tmp_path / "sa"
        sa_dir.mkdir()
        (sa_dir / "token").write_text(_token(k, NS, identity.AGENT_NAME))
        (sa_dir / "ca.crt").write_bytes((control_plane.dir / "pki" / "ca.crt").read_bytes())
    yield sa_dir
    with control_plane.kube() as k:
        for res, name in ((CONFIGMAP, CM), (ROLE_BINDING, identity.AGENT_NAME), (ROLE, identity.AGENT_NAME),
                          (SERVICE_ACCOUNT, identity.AGENT_NAME)):
            if k.get_or_none(res, name, NS) is not None:
                k.delete(res, name, NS)


def _watch(control_plane: Any, sa_dir: Path, name: str = CM) -> tuple[ConfigMapWatch, threading.Event]:
    url = urllib.parse.urlsplit(control_plane.server)
    changed = threading.Event()
    w = ConfigMapWatch(NS, name, KEY, changed.set, sa_dir=str(sa_dir), server=(str(url.hostname), int(url.port or 0)))
    w.start()
    return w, changed


def _until(w: ConfigMapWatch, changed: threading.Event, want: Any, timeout: float = 10.0) -> None:
    """Each change is signalled (no polling of the server): wait for signals until the state is the one wanted."""
    import time

    deadline = time.monotonic() + timeout
    while not want(w.seen()):
        left = deadline - time.monotonic()
        assert left > 0, w.seen()
        changed.wait(left)
        changed.clear()


def test_the_watch_follows_changes_and_deletion_of_its_configmap(control_plane, agent_identity) -> None:
    w, changed = _watch(control_plane, agent_identity)
    try:
        _until(w, changed, lambda s: s.healthy and s.raw == ONE)
        with control_plane.kube() as k:
            cm = k.get(CONFIGMAP, CM, NS)
            cm["data"][KEY] = TWO
            k.replace(CONFIGMAP, cm, NS)
        _until(w, changed, lambda s: s.raw == TWO)
        with control_plane.kube() as k:
            k.delete(CONFIGMAP, CM, NS)
        _until(w, changed, lambda s: s.raw is None and "does not exist" in s.why and s.healthy)
        with control_plane.kube() as k:
            k.create(CONFIGMAP, _cm(ONE), NS)
        _until(w, changed, lambda s: s.raw == ONE)
    finally:
        w.stop()
        w.join(5)
    assert not w.is_alive()


def test_the_role_allows_that_configmap_only(control_plane, agent_identity) -> None:
    """Another ConfigMap in the same namespace is forbidden: the error names the Role's rule, and the source
    rule falls back to the mounted file."""
    with control_plane.kube() as k:
        other = {**_cm(ONE), "metadata": {"name": "other", "namespace": NS}}
        if k.get_or_none(CONFIGMAP, "other", NS) is None:
            k.create(CONFIGMAP, other, NS)
    w, _ = _watch(control_plane, agent_identity, name="other")
    try:
        assert w.answered.wait(10)
        seen = w.seen()
        assert not seen.listed and not seen.healthy
        assert "forbidden: the agent's Role must allow get, list and watch on configmaps/other" in seen.why
    finally:
        w.stop()
        w.join(5)
        with control_plane.kube() as k:
            k.delete(CONFIGMAP, "other", NS)


def test_the_source_is_the_api_while_it_answers_and_the_file_when_it_refuses(control_plane, agent_identity,
                                                                             tmp_path) -> None:
    """The file (the kubelet's copy) lags behind the API's document, which wins; a token the API server rejects
    leaves the file as the source, and says why. (What happens when the API stops answering after it answered:
    tests/unit/test_agent_rooms.py, on the same rule.)"""
    f = tmp_path / KEY
    f.write_text('[{"name": "old", "lowerDevice": "eth9"}]')
    w, changed = _watch(control_plane, agent_identity)
    try:
        _until(w, changed, lambda s: s.healthy and s.raw == ONE)
        src = ConfigSource(path=str(f), api=w)
        assert src.read() and [e.name for e in src.entries or []] == ["dp"]
        assert src.state() == {"source": API, "from": f"ConfigMap {NS}/{CM}"}
    finally:
        w.stop()
    (agent_identity / "token").write_text("not-a-token")
    refused, _ = _watch(control_plane, agent_identity)
    try:
        assert refused.answered.wait(10)
        src = ConfigSource(path=str(f), api=refused)
        assert src.read() and [e.name for e in src.entries or []] == ["old"]
        state = src.state()
        assert state["source"] == FILE and state["from"] == str(f)
        assert "the API server does not answer (HTTP 401" in state["detail"], state
    finally:
        refused.stop()


def test_one_list_is_what_agent_check_reads(control_plane, agent_identity) -> None:
    """`agent check` in the pod reads the ConfigMap once by the agent's rule, not the kubelet's lagging copy."""
    url = urllib.parse.urlsplit(control_plane.server)
    server = (str(url.hostname), int(url.port or 0))
    seen = ConfigMapWatch(NS, CM, KEY, lambda: None, sa_dir=str(agent_identity), server=server).list_once()
    assert seen.listed and seen.healthy and seen.raw == ONE
    refused = ConfigMapWatch(NS, "other", KEY, lambda: None, sa_dir=str(agent_identity), server=server).list_once()
    assert not refused.listed and "forbidden" in refused.why


def test_the_handoffs_event_reaches_the_vmi_with_the_agents_cluster_role_and_nothing_without_it(
        control_plane: Any, agent_identity: Path) -> None:
    """agent/events.py through the agent's own door (agent/apiserver.py): with the ClusterRole install writes (create
    events, nothing else cluster-wide) the hand-off's Event lands in the VMI's namespace, about the VMI; before the
    binding exists the POST is refused and said, and nothing blocks."""
    from macvtapctl.agent import events
    from macvtapctl.agent.apiserver import InCluster
    from macvtapctl.agent.handoff import HANDOFF
    from macvtapctl.kube.resources import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, EVENT

    url = urllib.parse.urlsplit(control_plane.server)
    api = InCluster(agent_identity, (str(url.hostname), int(url.port or 0)))
    opts = agentm.InstallOptions(namespace=NS, configmap=CM)
    pod = (NS, "virt-launcher-mover-x7k2p")

    def post(text: str) -> events.EventRecorder:
        rec = events.EventRecorder("node-a", api)
        rec.start()
        rec.tell(pod, HANDOFF, text)
        rec.stop()
        rec.join(timeout=20)
        assert not rec.is_alive()
        return rec

    refused = post("refused")
    assert refused.posted == 0 and "forbidden" in refused._said
    with control_plane.kube() as k:
        k.create(CLUSTER_ROLE, agentm.cluster_role())
        k.create(CLUSTER_ROLE_BINDING, agentm.cluster_role_binding(opts))
    try:
        import time

        deadline = time.monotonic() + 10  # RBAC's cache takes a moment to see the new binding
        while post("set down").posted == 0:
            assert time.monotonic() < deadline, "the agent's ClusterRole did not allow the Event"
            time.sleep(0.5)
        with control_plane.kube() as k:
            found = [e for e in k.list(EVENT, NS) if e.get("reason") == HANDOFF]
        assert [(e["involvedObject"]["kind"], e["involvedObject"]["name"], e["message"]) for e in found] == [
            ("VirtualMachineInstance", "mover", "set down")]
        assert found[0]["source"] == {"component": "macvtapctl-agent", "host": "node-a"}
    finally:
        with control_plane.kube() as k:
            k.delete(CLUSTER_ROLE_BINDING, identity.AGENT_NAME)
            k.delete(CLUSTER_ROLE, identity.AGENT_NAME)


def test_a_target_launcher_is_told_apart_by_one_get_with_the_agents_cluster_role(
        control_plane: Any, agent_identity: Path) -> None:
    """agent/migration_target.py through the agent's own door: with the ClusterRole install writes (get pods) a
    launcher pod that KubeVirt labelled as a migration's target is one, an unlabelled launcher is not; before the
    binding exists the GET is refused and said, and the answer is "not a target" (its link attached up)."""
    from macvtapctl.agent.apiserver import InCluster
    from macvtapctl.agent.migration_target import TargetLookup
    from macvtapctl.kube.resources import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, POD
    from macvtapctl.rules.launcher import MIGRATION_JOB_LABEL

    url = urllib.parse.urlsplit(control_plane.server)
    api = InCluster(agent_identity, (str(url.hostname), int(url.port or 0)))
    opts = agentm.InstallOptions(namespace=NS, configmap=CM)
    target, source = "virt-launcher-mover-x7k2p", "virt-launcher-mover-b5c9d"

    def launcher(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": labels},
                "spec": {"containers": [{"name": "compute", "image": "localhost/none:0"}]}}

    with control_plane.kube() as k:
        k.create(POD, launcher(source, {"kubevirt.io": "virt-launcher"}), NS)
        k.create(POD, launcher(target, {"kubevirt.io": "virt-launcher", MIGRATION_JOB_LABEL: "6f2c0c1e"}), NS)
    refused = TargetLookup(api)
    assert refused((NS, target)) is False and "forbidden" in refused._said
    with control_plane.kube() as k:
        k.create(CLUSTER_ROLE, agentm.cluster_role())
        k.create(CLUSTER_ROLE_BINDING, agentm.cluster_role_binding(opts))
    try:
        import time

        deadline = time.monotonic() + 10  # RBAC's cache takes a moment to see the new binding
        while not TargetLookup(api)((NS, target)):
            assert time.monotonic() < deadline, "the agent's ClusterRole did not allow get pods"
            time.sleep(0.5)
        lookup = TargetLookup(api)
        assert lookup((NS, source)) is False and lookup((NS, "virt-launcher-gone-x7k2q")) is False
        assert lookup._said == {"ApiUnavailable"}  # the pod that is not there: said once, attached up
    finally:
        with control_plane.kube() as k:
            k.delete(CLUSTER_ROLE_BINDING, identity.AGENT_NAME)
            k.delete(CLUSTER_ROLE, identity.AGENT_NAME)
            for name in (target, source):
                k.delete(POD, name, NS)
