"""VirtualMachines on macvtap: lint generated VMs against the cluster, apply them in batches, convert the core
`macvtap: {}` binding of old VMs."""

from __future__ import annotations

from typing import Any, Protocol

from macvtapctl.errors import ExitCode, MacvtapctlError, PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.facts import gather, registered_bindings
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import VIRTUAL_MACHINE
from macvtapctl.kube.retry import guarded_json_patch
from macvtapctl.kube.vms import all_vms
from macvtapctl.ops import Reporter, binding
from macvtapctl.rules import applied, vmlint


class Progress(Protocol):
    """A progress display for batches (the CLI's bar); without one each VM gets a status line."""

    def advance(self) -> None: ...

    def close(self, ok: int, failed: int, dry_run: DryRun) -> None: ...


def check_against_cluster(kube: Kube, report: Reporter, vms: list[dict[str, Any]], namespace: str
                          ) -> dict[str, dict[str, Any]]:
    """Lint the generated VMs against the cluster; errors stop everything before any write. Returns the VMs that
    exist in `namespace` by name (read in the same LIST)."""

    cluster_vms = all_vms(kube)
    facts = gather(kube, namespaces={namespace}, vms=cluster_vms)
    errors: list[str] = []
    for vm in vms:
        obj = {**vm, "metadata": {**vm["metadata"], "namespace": namespace}}
        for finding in vmlint.lint(obj, facts):
            if finding.check == "no-mac":
                continue  # the generator's choice; `vm check` reports it for existing VMs
            line = f"VM {obj['metadata']['name']}: {finding.field}: {finding.message}"
            if finding.severity == vmlint.ERROR:
                errors.append(line)
            else:
                report.warn(line)
        vmlint.record_macs(obj, facts)
    if errors:
        for line in errors[:-1]:
            report.error(line)
        raise PreconditionError(errors[-1] + (f" ({len(errors)} problems; nothing was written)"
                                              if len(errors) > 1 else " (nothing was written)"))
    return {v["metadata"]["name"]: v for v in cluster_vms
            if v["metadata"].get("namespace") == namespace and v.get("kind") == "VirtualMachine"}


def apply_vms(kube: Kube, report: Reporter, vms: list[dict[str, Any]], namespace: str, dry_run: DryRun,
              concurrency: int, *, force: bool = False, progress: Progress | None = None,
              existing: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Server-side apply with bounded concurrency; report exactly which VMs failed. Fields other managers own
    are a conflict (exit 5) unless `force` (--force-conflicts). `existing`: the namespace's VMs by name, read
    before (else one LIST here), to say created, configured or unchanged — one request per VM, not two."""
    from concurrent.futures import ThreadPoolExecutor

    if existing is None:
        existing = {v["metadata"]["name"]: v for v in kube.list(VIRTUAL_MACHINE, namespace)}

    def one(vm: dict[str, Any]) -> tuple[dict[str, Any], str]:
        obj = {**vm, "metadata": {**vm["metadata"], "namespace": namespace}}
        name = obj["metadata"]["name"]
        before = existing.get(name)
        after = kube.apply(VIRTUAL_MACHINE, obj, namespace, dry_run=dry_run, force=force)
        if before is None:
            return after, "created"
        # Content, not resourceVersion: a server dry run never bumps it, so it cannot tell a change.
        return after, "unchanged" if applied.unchanged(before, after) else "configured"

    results: list[dict[str, Any]] = []
    failures: list[tuple[str, MacvtapctlError]] = []
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(vms)))
    try:
        futures = [(vm["metadata"]["name"], pool.submit(one, vm)) for vm in vms]
        for name, fut in futures:
            try:
                obj, operation = fut.result()
            except MacvtapctlError as exc:
                failures.append((name, exc))
                report.error(f"VM {name}: {exc.message}")
            else:
                results.append(obj)
                if progress is None:
                    report.status(f"virtualmachine.kubevirt.io/{name}", operation, dry_run.suffix)
            if progress is not None:
                progress.advance()
    except BaseException:
        # Ctrl-C: stop now. Writes in flight finish (each is a whole apply, never half a VM); queued ones are
        # dropped, and a rerun applies them (the names are the same, so nothing is duplicated).
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if progress is not None:
        progress.close(len(vms) - len(failures), len(failures), dry_run)
    if failures:
        codes = {f[1].exit_code for f in failures}
        failed = ", ".join(n for n, _ in failures)
        hints = {f[1].hint for f in failures}
        raise MacvtapctlError(f"{len(failures)} of {len(vms)} VMs failed: {failed}",
                              exit_code=codes.pop() if len(codes) == 1 else ExitCode.ERROR,
                              hint=hints.pop() if len(hints) == 1 else None)
    return results


def convert_one(kube: Kube, report: Reporter, dry_run: DryRun, vm: dict[str, Any], binding: str) -> dict[str, Any]:
    """Convert one VM with a resourceVersion-guarded JSON patch; re-read and retry when it changed."""

    vm_name, vm_ns = vm["metadata"]["name"], vm["metadata"]["namespace"]
    label = VIRTUAL_MACHINE.label(vm_name)

    def plan(current: dict[str, Any]) -> list[dict[str, Any]]:
        return _convert_ops(core_macvtap_indexes(current), binding)

    if dry_run is DryRun.CLIENT:
        import jsonpatch

        ops = plan(vm)
        report.status(label, "converted" if ops else "unchanged", dry_run.suffix)
        result: dict[str, Any] = jsonpatch.apply_patch(vm, ops) if ops else vm
        return result
    written, changed = guarded_json_patch(kube, VIRTUAL_MACHINE, vm_name, vm_ns, plan, what=f"VM {vm_ns}/{vm_name}",
                                          dry_run=dry_run, current=vm)
    report.status(label, "converted" if changed else "unchanged", dry_run.suffix)
    return written


def core_macvtap_indexes(vm: dict[str, Any]) -> list[int]:
    ifaces = vmlint.vmi_spec(vm).get("domain", {}).get("devices", {}).get("interfaces") or []
    return [i for i, iface in enumerate(ifaces) if "macvtap" in iface]


def _convert_ops(indexes: list[int], binding: str) -> list[dict[str, Any]]:
    base = "/spec/template/spec/domain/devices/interfaces"
    ops: list[dict[str, Any]] = []
    for i in indexes:
        ops.append({"op": "remove", "path": f"{base}/{i}/macvtap"})
        ops.append({"op": "add", "path": f"{base}/{i}/binding", "value": {"name": binding}})
    return ops


def lint_vms(kube: Kube, name: str | None, namespace: str | None) -> tuple[int, list[dict[str, Any]]]:
    """vm check: (how many VMs on macvtap were checked, one row per finding). `name` is checked whether or not
    it uses macvtap; otherwise every VM in `namespace` (None: all) that does. MACs are checked against every VM
    of the cluster."""

    cluster_vms = all_vms(kube)
    facts = gather(kube, namespaces=None if namespace is None else {namespace}, vms=cluster_vms)
    if name:
        if namespace is None:
            raise PreconditionError("a VM name needs a namespace")
        vms = [kube.get(VIRTUAL_MACHINE, name, namespace)]
    else:
        vms = [v for v in cluster_vms if namespace is None or v["metadata"].get("namespace") == namespace]
    rows: list[dict[str, Any]] = []
    checked = 0
    for vm in vms:
        if not vmlint.uses_macvtap(vm, facts) and not name:
            continue
        checked += 1
        rows += [{"namespace": vm["metadata"]["namespace"], "name": vm["metadata"]["name"],
                  "kind": vm.get("kind", "VirtualMachine"), "severity": f.severity, "check": f.check,
                  "field": f.field, "message": f.message} for f in vmlint.lint(vm, facts)]
    return checked, rows


def convert_vms(kube: Kube, report: Reporter, dry_run: DryRun, name: str | None, namespace: str | None, *,
                binding_name: str, kubevirt_version: str | None) -> list[dict[str, Any]]:
    """vm convert: rewrite core `macvtap: {}` interfaces to the binding, registering the binding first when a VM
    needs it. Returns each target VM as written (or found unchanged)."""

    if name:
        if namespace is None:
            raise PreconditionError("a VM name needs a namespace")
        targets = [kube.get(VIRTUAL_MACHINE, name, namespace)]
    else:
        targets = kube.list(VIRTUAL_MACHINE, namespace)
    if any(core_macvtap_indexes(vm) for vm in targets) and binding_name not in registered_bindings(kube):
        binding.enable(kube, report, dry_run, binding_name=binding_name, kubevirt_version=kubevirt_version)
    return [convert_one(kube, report, dry_run, vm, binding_name) for vm in targets]
