"""Switch the nodes between upstream macvtap-cni (or CNAO's) and the agent: `install --take-over` and
`uninstall --restore-upstream`. The user's ConfigMap, NADs and running pods and VMs are never touched.

Take over: the agent is installed beside upstream, in its namespace (a pod mounts only ConfigMaps of its own
namespace) and reading its ConfigMap. The kubelet keeps every plugin registered for a resource (keyed by socket
path: the agent's differs from upstream's), serves from the newest and falls back to the other when it goes; so
once the agent is ready on every node — registered, its shim in place of `<cni-bin>/macvtap` — upstream's
DaemonSet is removed (for CNAO: its macvtap is turned off in the NetworkAddonsConfig, so the operator does not
put it back) with no moment in which a node serves nothing. Running pods keep their links; their DEL goes to
the agent, which names links as upstream does.

Give back, the same way round: upstream's DaemonSet (or CNAO's macvtap spec) is put back from the record the
take-over kept; once it is rolled out (its init container has copied its binary over the shim) and, on every
node the agent runs on, the kubelet is connected to its plugin for every resource the agent advertises there (the
agent's node report says so: rolled out is not registered, macvtap-cni registers seconds after it starts, and
the kubelet marks a resource's devices unhealthy when its last plugin goes), the agent is rolled to its
uninstall mode (it leaves upstream's binary alone and deletes the links no pod owns) and deleted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.errors import ForbiddenError, MacvtapctlError, PreconditionError, TimeoutExceeded, UsageError
from macvtapctl.kube import resources as r
from macvtapctl.kube.client import Kube
from macvtapctl.kube.errors import AlreadyExistsError
from macvtapctl.kube.follow import Caches, WaitExpired, Watch, until
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import (
    CONFIGMAP,
    DAEMONSET,
    NETWORK_ADDONS_CONFIG,
    POD,
)
from macvtapctl.kube.retry import retry_on_conflict
from macvtapctl.manifests import agent as agentm
from macvtapctl.manifests import takeover as rec
from macvtapctl.ops import Reporter
from macvtapctl.ops.doctor import proxy_get
from macvtapctl.ops.install import apply_objects, wait_ready
from macvtapctl.ops.uninstall import clean_nodes
from macvtapctl.ops.wait import NodeProgress
from macvtapctl.rules import device_plugins, dpconfig
from macvtapctl.rules.waits import Left, handed_back, left_of, owned_by, selector_of, upstream_rollout


def serving(kube: Kube) -> list[tuple[device_plugins.Plugin, dict[str, Any]]]:
    """Every macvtap device-plugin DaemonSet in the cluster."""
    return device_plugins.find(kube.list(DAEMONSET))


def refuse_others(kube: Kube, namespace: str, *, via_cnao: bool = False) -> str | None:
    """Before install writes anything: another macvtap device plugin (upstream's, CNAO's, or the agent in
    another namespace) would compete with the one installed. Returns the ConfigMap the agent already in
    `namespace` reads (after a take-over: macvtap-cni's, which may have another name), which it keeps reading."""
    reads = None
    for p, _ in serving(kube):
        if p.kind == device_plugins.AGENT:
            if p.namespace != namespace or p.name != identity.AGENT_NAME:
                raise PreconditionError(f"the macvtapctl agent already runs as {p.label}: pass --namespace "
                                        f"{p.namespace} to update it")
            reads = p.configmap
            continue
        if via_cnao and p.cnao:
            continue  # the NetworkAddonsConfig being configured is the one that deployed it
        raise PreconditionError(f"{p.describe()} already serves macvtap: two device plugins on one kubelet fight "
                                "over the same resources; pass --take-over to switch its nodes to the agent "
                                "(docs/install.md)")
    if not via_cnao:  # CNAO told to deploy macvtap-cni, which it may not have done yet
        nac = kube.get_or_none(NETWORK_ADDONS_CONFIG, "cluster")  # None too when CNAO's CRD is not served
        if nac is not None and dig(nac, "spec", "macvtap") is not None:
            raise PreconditionError("NetworkAddonsConfig cluster has spec.macvtap: CNAO deploys macvtap-cni, which "
                                    "would compete with the agent; once it runs, pass --take-over to switch its "
                                    "nodes to the agent (docs/install.md)")
    return reads


def taken_over(kube: Kube, namespace: str) -> bool:
    """The agent in `namespace` took over from macvtap-cni there (the record exists): the namespace is upstream's
    owner's, and install leaves it as it is."""
    return kube.get_or_none(CONFIGMAP, rec.RECORD_NAME, namespace) is not None


@dataclass
class _Plan:
    namespace: str
    configmap: str
    upstream: tuple[device_plugins.Plugin, dict[str, Any]] | None  # None: taken over already (a second run)
    nac: dict[str, Any] | None = None


def _records(kube: Kube, namespace: str | None) -> list[dict[str, Any]]:
    return kube.list(CONFIGMAP, namespace, label_selector=rec.RECORD_SELECTOR)


def _plan(kube: Kube, namespace_flag: str | None) -> _Plan:
    found = serving(kube)
    ups = [t for t in found if t[0].kind == device_plugins.UPSTREAM]
    if len(ups) > 1:
        raise PreconditionError("several macvtap-cni DaemonSets serve macvtap ("
                                f"{', '.join(p.label for p, _ in ups)}): remove all but one first")
    if not ups:
        done = _records(kube, namespace_flag)
        if done:  # taken over before: install again where it was, which changes nothing
            ns = done[0]["metadata"]["namespace"]
            return _Plan(ns, rec.configmap_of(done[0]) or dpconfig.CONFIGMAP_NAME, None)
        raise PreconditionError("nothing to take over: no macvtap-cni DaemonSet found (install without "
                                "--take-over)")
    p = ups[0][0]
    if namespace_flag and namespace_flag != p.namespace:
        raise UsageError(f'invalid --namespace "{namespace_flag}": --take-over installs the agent beside '
                         f"{p.label}, in namespace {p.namespace} (a pod can only mount a ConfigMap of its own "
                         "namespace)")
    for other, _ in found:
        if other.kind == device_plugins.AGENT and (other.namespace, other.name) != (p.namespace, identity.AGENT_NAME):
            raise PreconditionError(f"the macvtapctl agent already runs as {other.label}: uninstall it first")
    if p.configmap is None:
        raise PreconditionError(f"{p.label} reads no ConfigMap (expected DP_MACVTAP_CONF from envFrom or "
                                "configMapKeyRef): nothing the agent could read")
    cm = kube.get_or_none(CONFIGMAP, p.configmap, p.namespace)
    if cm is None:
        raise PreconditionError(f"{p.describe()}, which does not exist: create it (macvtapctl expose "
                                f"LOWER_DEVICE --dp-namespace {p.namespace}) first")
    if any(o.get("kind") == "NetworkAddonsConfig" for o in dig(cm, "metadata", "ownerReferences") or []):
        raise PreconditionError(
            f"ConfigMap {p.namespace}/{p.configmap} is CNAO's own: turning macvtap off in CNAO deletes it. Copy "
            "it to a ConfigMap of your own in that namespace, point CNAO at it (kubectl patch networkaddonsconfig "
            f"{p.cnao} --type merge -p "
            "'{\"spec\":{\"macvtap\":{\"devicePluginConfig\":\"NAME\"}}}'), then take over")
    nac = kube.get_or_none(NETWORK_ADDONS_CONFIG, p.cnao) if p.cnao else None
    if p.cnao and nac is None:
        raise PreconditionError(f"{p.label} is owned by NetworkAddonsConfig {p.cnao}, which cannot be read")
    return _Plan(p.namespace, p.configmap, ups[0], nac)


def take_over(kube: Kube, report: Reporter, dry_run: DryRun, opts: agentm.InstallOptions, namespace_flag: str | None,
              limit: float, progress: NodeProgress | None = None) -> list[dict[str, Any]]:
    """install --take-over. Returns the objects written (the record, ServiceAccount, DaemonSet)."""
    plan = _plan(kube, namespace_flag)
    opts.namespace, opts.configmap = plan.namespace, plan.configmap
    if plan.upstream is not None:
        theirs = device_plugins.cni_bin_dir_of(plan.upstream[1])
        if theirs and theirs != opts.cni_bin_dir:
            # The runtime looks for `macvtap` where macvtap-cni installed it: the shim must replace that one.
            report.info(f"CNI bin dir {theirs}: where {plan.upstream[0].label} installs its binary (not "
                        f"{opts.cni_bin_dir})")
            opts.cni_bin_dir = theirs
    written = []
    if plan.upstream is not None:
        p, ds = plan.upstream
        report.info(f"taking over from {p.describe()}")
        cnao = (str(p.cnao), dict(dig(plan.nac, "spec", "macvtap") or {})) if plan.nac is not None else None
        record = rec.record(plan.namespace, plan.configmap, daemonset=None if cnao else ds, cnao=cnao)
        written.append(_create_record(kube, report, dry_run, record))
    # Beside macvtap-cni, in its namespace, reading its ConfigMap: neither is the agent's to write.
    written += apply_objects(kube, report, dry_run, agentm.own_objects(opts), opts.namespace)
    if plan.upstream is None:
        return written
    p, ds = plan.upstream
    if dry_run is not DryRun.NONE:
        if plan.nac is not None:
            report.status(NETWORK_ADDONS_CONFIG.label(str(p.cnao)), "configured (macvtap off)", dry_run.suffix)
        else:
            report.status(f"daemonset.apps/{p.name}", "deleted", dry_run.suffix)
        return written
    try:
        wait_ready(kube, report, opts, limit, progress)
    except TimeoutExceeded as exc:
        raise TimeoutExceeded(f"{exc.message}. {p.label} was left running: run install --take-over again, or go "
                              "back with uninstall --restore-upstream") from None
    deadline = time.monotonic() + limit
    if plan.nac is not None:
        _cnao_macvtap(kube, report, str(p.cnao), None)
    else:
        kube.delete(DAEMONSET, p.name, p.namespace, preconditions={"uid": ds["metadata"]["uid"]})
        report.status(f"daemonset.apps/{p.name}", "deleted")
    _wait_gone(kube, p, ds, deadline)
    report.info(f"{p.label} is gone: the agent serves every node it ran on")
    return written


def _create_record(kube: Kube, report: Reporter, dry_run: DryRun, record: dict[str, Any]) -> dict[str, Any]:
    """Written before anything changes, so that a take-over cut short can still be given back; a record left by
    an earlier attempt is kept (it holds what was there first)."""
    label = CONFIGMAP.label(rec.RECORD_NAME)
    ns = record["metadata"]["namespace"]
    try:
        created: dict[str, Any] = kube.create(CONFIGMAP, record, ns, dry_run=dry_run) if dry_run is not DryRun.CLIENT \
            else record
    except AlreadyExistsError:
        report.status(label, "unchanged", dry_run.suffix)
        return dict(kube.get(CONFIGMAP, rec.RECORD_NAME, ns))
    report.status(label, "created", dry_run.suffix)
    return created


def _cnao_macvtap(kube: Kube, report: Reporter, name: str, macvtap: dict[str, Any] | None) -> None:
    """Turn CNAO's macvtap off (None) or back on, guarded by resourceVersion: the operator's supported switch."""

    def attempt() -> None:
        nac = kube.get(NETWORK_ADDONS_CONFIG, name)
        if dig(nac, "spec", "macvtap") == macvtap:
            report.status(NETWORK_ADDONS_CONFIG.label(name), "unchanged")
            return
        kube.merge_patch(NETWORK_ADDONS_CONFIG, name, {"metadata": {"resourceVersion": nac["metadata"]
                                                                    ["resourceVersion"]},
                                                       "spec": {"macvtap": macvtap}})
        report.status(NETWORK_ADDONS_CONFIG.label(name), "configured (macvtap " + ("off)" if macvtap is None
                                                                                   else "on)"))

    retry_on_conflict(attempt, what=NETWORK_ADDONS_CONFIG.label(name))


def _wait_gone(kube: Kube, p: device_plugins.Plugin, ds: dict[str, Any], deadline: float) -> None:
    """Until the DaemonSet and its pods are gone (CNAO removes its own; the garbage collector the pods), on
    watches of both."""
    selector = selector_of(ds)
    watches = [Watch("ds", DAEMONSET, p.namespace, {"field_selector": f"metadata.name={p.name}"})]
    if selector:
        watches.append(Watch("pods", POD, p.namespace, {"label_selector": selector}))
    left: Left | None = Left(True, 0)

    def gone(caches: Caches) -> bool | None:
        nonlocal left
        left = left_of(caches["ds"].get(p.name), caches.get("pods", {}).values(), p.name)
        return True if left is None else None

    try:
        until(kube, watches, gone, max(0.0, deadline - time.monotonic()), f"{p.label} to go")
    except WaitExpired:
        assert left is not None
        what = f"{p.label} still exists" if left.daemonset else f"{left.pods} of its pod(s) still run"
        raise TimeoutExceeded(f"the agent serves every node, but {what}"
                              + (" (CNAO has not removed it)" if p.cnao and left.daemonset else "")) from None


def give_back(kube: Kube, report: Reporter, dry_run: DryRun, namespace_flag: str | None, limit: float) -> None:
    """uninstall --restore-upstream."""
    records = _records(kube, namespace_flag)
    if not records:
        raise PreconditionError(f"no take-over record (ConfigMap {rec.RECORD_NAME}, written by install "
                                "--take-over) found" + (f" in namespace {namespace_flag}" if namespace_flag else "")
                                + ": nothing to give back")
    if len(records) > 1:
        raise PreconditionError("take-over records in several namespaces ("
                                f"{', '.join(r['metadata']['namespace'] for r in records)}): pass --namespace")
    record = records[0]
    ns = record["metadata"]["namespace"]
    saved_ds, saved_cnao = rec.saved_daemonset(record), rec.saved_cnao(record)
    deadline = time.monotonic() + limit
    if saved_cnao is not None:
        if dry_run is DryRun.NONE:
            _cnao_macvtap(kube, report, *saved_cnao)
        else:
            report.status(NETWORK_ADDONS_CONFIG.label(saved_cnao[0]), "configured (macvtap on)", dry_run.suffix)
    elif saved_ds is not None:
        name = saved_ds["metadata"]["name"]
        try:
            if dry_run is not DryRun.CLIENT:
                kube.create(DAEMONSET, saved_ds, ns, dry_run=dry_run)
            report.status(f"daemonset.apps/{name}", "created", dry_run.suffix)
        except AlreadyExistsError:
            report.status(f"daemonset.apps/{name}", "unchanged", dry_run.suffix)
    else:
        raise PreconditionError(f"ConfigMap {ns}/{rec.RECORD_NAME} holds neither a DaemonSet nor CNAO's spec")
    if dry_run is DryRun.NONE:
        _wait_upstream(kube, report, ns, saved_ds, deadline)
        _wait_registered(kube, report, ns, deadline)
        clean_nodes(kube, report, ns)
    own = reversed(agentm.own_objects(agentm.InstallOptions(namespace=ns)))
    for res, name in (*((r.of(o), o["metadata"]["name"]) for o in own), (CONFIGMAP, rec.RECORD_NAME)):
        if kube.get_or_none(res, name, ns) is None:
            continue
        if dry_run is not DryRun.CLIENT:
            kube.delete(res, name, ns, dry_run=dry_run)
        report.status(res.label(name), "deleted", dry_run.suffix)


def _wait_upstream(kube: Kube, report: Reporter, ns: str, saved_ds: dict[str, Any] | None, deadline: float) -> None:
    """Until upstream's DaemonSet (CNAO's: the one it creates) is rolled out on every node it selects, on a watch
    of the namespace's DaemonSets (CNAO's name is not known beforehand)."""
    name = saved_ds["metadata"]["name"] if saved_ds is not None else None
    last = "its DaemonSet does not exist yet"
    said = ""

    def rolled_out(caches: Caches) -> device_plugins.Plugin | None:
        nonlocal last, said
        plugin, problem = upstream_rollout(caches["ds"].values(), ns, name)
        if problem is None:
            return plugin
        last = problem
        if problem != said:
            report.info(f"waiting for macvtap-cni: {problem}")
            said = problem
        return None

    try:
        plugin = until(kube, [Watch("ds", DAEMONSET, ns)], rolled_out, max(0.0, deadline - time.monotonic()),
                       "macvtap-cni")
    except WaitExpired:
        raise TimeoutExceeded(f"macvtap-cni is not ready ({last}); the agent was left running: run "
                              "uninstall --restore-upstream again") from None
    report.info(f"{plugin.label} is ready on every node")


REPORT_POLL = 1.0  # seconds between two reads of the agents' node reports


def _upstream_nodes(kube: Kube, ns: str) -> set[str]:
    """The nodes macvtap-cni's DaemonSet in `ns` has a pod on (running or not: it is rolled out)."""
    ups = [ds for p, ds in device_plugins.find(kube.list(DAEMONSET, ns)) if p.kind == device_plugins.UPSTREAM]
    selector = selector_of(ups[0]) if ups else ""
    if not selector:
        return set()
    name = ups[0]["metadata"]["name"]
    return {str(dig(q, "spec", "nodeName")) for q in kube.list(POD, ns, label_selector=selector)
            if dig(q, "spec", "nodeName") and owned_by(q, name)}


def _agent_reports(kube: Kube, ns: str) -> dict[str, dict[str, Any] | str]:
    """node -> its running agent's node report (GET /doctor through the pod proxy), or why it could not be read.
    ForbiddenError goes up: without get pods/proxy no report can be read at all."""
    reports: dict[str, dict[str, Any] | str] = {}
    for pod in kube.list(POD, ns, label_selector=f"{identity.NAME_LABEL}={identity.AGENT_NAME}"):
        node = dig(pod, "spec", "nodeName")
        if not node or dig(pod, "status", "phase") != "Running":
            continue  # an agent not running serves nothing there: its leaving opens no gap
        try:
            got = proxy_get(kube, pod, identity.METRICS_PORT, "doctor")
        except ForbiddenError:
            raise
        except MacvtapctlError as exc:  # not answering yet (its node checks have not run, say): asked again
            got = f"its agent did not answer: {exc.message}"
        reports[str(node)] = got if isinstance(got, (dict, str)) else "its agent sent no report"
    return reports


def _wait_registered(kube: Kube, report: Reporter, ns: str, deadline: float) -> None:
    """Until, on every node the agent runs on, the kubelet is connected to macvtap-cni's plugin for every resource
    the agent advertises there (rules/waits.handed_back on the agents' node reports). The reports are not API
    objects, so there is nothing to watch: they are read once a second."""
    said = ""
    warned: set[str] = set()
    while True:
        try:
            reports = _agent_reports(kube, ns)
        except ForbiddenError:
            report.warn(f"cannot verify that the kubelets serve from macvtap-cni (reading the agents' node reports "
                        f"needs get pods/proxy in namespace {ns}): the agent leaves as macvtap-cni is rolled out")
            return
        state = handed_back(reports, _upstream_nodes(kube, ns))
        new = sorted(set(state.unverified) - warned)
        if new:
            report.warn(f"cannot verify that the kubelet serves from macvtap-cni on {', '.join(new)} (its agent "
                        "does not report its kubelet's plugins: an older agent)")
            warned.update(new)
        new = sorted(set(state.uncovered) - warned)
        if new:
            report.warn(f"macvtap-cni does not run on {', '.join(new)}: macvtap is no longer served there once the "
                        "agent leaves")
            warned.update(new)
        if state.ok:
            if state.checked:
                report.info(f"macvtap-cni is {state.summary}")
            return
        line = f"{state.summary}, not yet on {', '.join(state.lagging)}"
        if line != said:
            report.info(f"waiting for macvtap-cni: {line}")
            said = line
        if time.monotonic() >= deadline:
            raise TimeoutExceeded(f"macvtap-cni is rolled out but not registered with the kubelet on "
                                  f"{', '.join(state.lagging)}; the agent was left running: run uninstall "
                                  "--restore-upstream again")
        time.sleep(min(REPORT_POLL, max(0.0, deadline - time.monotonic())))
