"""install --injector: network-resources-injector's objects (manifests/injector.py) with a certificate that is kept
while it is good, the refusal to deploy a second injector, the proof that injection works (a server-side dry run
of a pod that asks for a macvtap network), and its removal on uninstall."""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

from macvtapctl.errors import ForbiddenError, MacvtapctlError, PreconditionError, TimeoutExceeded
from macvtapctl.kube import resources as r
from macvtapctl.kube.client import Kube
from macvtapctl.kube.follow import Caches, Watch, until
from macvtapctl.kube.options import DryRun
from macvtapctl.manifests import injector as m
from macvtapctl.ops import Reporter
from macvtapctl.rules import injector as rules
from macvtapctl.rules import nad as nadr
from macvtapctl.rules.waits import deployment_rollout

CERT_DAYS = 3650  # renewed by install when less than RENEW_DAYS remain (an expired one refuses every VM pod)
RENEW_DAYS = 365


def new_certs(namespace: str) -> m.Certs:
    """A CA of its own and a serving certificate for the Service's names; the CA's key is dropped here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{m.NAME} CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    hosts = m.service_hosts(namespace)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return m.Certs(ca.public_bytes(pem), cert.public_bytes(pem),
                   key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def usable(certs: m.Certs, namespace: str) -> bool:
    """Keep a stored certificate: signed by the stored CA, for this namespace's Service, not near its end, and
    matching its key."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    try:
        ca = x509.load_pem_x509_certificate(certs.ca)
        cert = x509.load_pem_x509_certificate(certs.cert)
        key = serialization.load_pem_private_key(certs.key, None)
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = set(sans.get_values_for_type(x509.DNSName))
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):  # unreadable: make new ones
        return False
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    same_key = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == \
        cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return same_key and set(m.service_hosts(namespace)) <= names and left > dt.timedelta(days=RENEW_DAYS)


def certificates(kube: Kube | None, namespace: str) -> m.Certs:
    """The Secret's certificate while it is usable (a second install changes nothing), new ones otherwise."""
    existing = kube.get_or_none(r.SECRET, m.SECRET_NAME, namespace) if kube is not None else None
    data = (existing or {}).get("data") or {}
    if all(k in data for k in ("ca.crt", "tls.crt", "tls.key")):
        stored = m.Certs(*(base64.b64decode(data[k]) for k in ("ca.crt", "tls.crt", "tls.key")))
        if usable(stored, namespace):
            return stored
    return new_certs(namespace)


def others(kube: Kube) -> list[rules.Injector]:
    """Injectors deployed by someone else (NRI's own manifests, the SR-IOV operator, HyperConverged)."""
    return rules.injectors(kube.list(r.MUTATING_WEBHOOK_CONFIGURATION), m.NAME)


def refuse(kube: Kube) -> None:
    found = others(kube)
    if found:
        raise PreconditionError(f"an injector is already deployed: {', '.join(map(str, found))}; a second one would "
                                "add each device request twice. Use it (macvtapctl status shows whether it injects), "
                                "or remove it before install --injector")


def objects(kube: Kube | None, opts: m.InjectorOptions, *, refuse_others: bool = False) -> list[dict[str, Any]]:
    """The objects to apply (kube None: --dry-run=client, a throwaway certificate); `refuse_others`: first make
    sure no other injector is deployed."""
    if kube is not None and refuse_others:
        refuse(kube)
    return m.objects(opts, certificates(kube, opts.namespace))


def remove(kube: Kube, report: Reporter, dry_run: DryRun, namespace: str) -> None:
    """uninstall: the webhook configuration first (no pod may wait for a server that is going), then the rest."""
    targets: list[tuple[r.Resource, str, str | None]] = [
        (r.MUTATING_WEBHOOK_CONFIGURATION, m.NAME, None), (r.DEPLOYMENT, m.NAME, namespace),
        (r.POD_DISRUPTION_BUDGET, m.NAME, namespace), (r.SERVICE, m.NAME, namespace),
        (r.SECRET, m.SECRET_NAME, namespace), (r.ROLE_BINDING, m.NAME, namespace), (r.ROLE, m.NAME, namespace),
        (r.CLUSTER_ROLE_BINDING, m.NAME, None), (r.CLUSTER_ROLE, m.NAME, None),
        (r.SERVICE_ACCOUNT, m.NAME, namespace)]
    for res, name, ns in targets:
        found = kube.get_or_none(res, name, ns)
        # Only ours: a user's object of the same name is left alone.
        if found is None or (found["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") != "macvtapctl":
            continue
        if dry_run is not DryRun.CLIENT:
            kube.delete(res, name, ns, dry_run=dry_run)
        report.status(res.label(name), "deleted", dry_run.suffix)


def probe_target(nads: list[dict[str, Any]], excluded: tuple[str, ...] = ("kube-system",)) -> tuple[
        dict[str, Any], str, str] | None:
    """The first macvtap NAD with a resource, its resource, and the namespace the probe pod goes to (the NAD's,
    unless the webhook never sees that namespace)."""
    for nad in sorted(nads, key=lambda n: (n["metadata"].get("namespace", ""), n["metadata"]["name"])):
        resource = nadr.resource_of(nad) if nadr.is_macvtap(nad) else None
        if resource:
            ns = nad["metadata"].get("namespace") or "default"
            return nad, resource, ns if ns not in excluded else "default"
    return None


def prove(kube: Kube, nads: list[dict[str, Any]] | None = None,
          excluded: tuple[str, ...] = ("kube-system",)) -> rules.Proof:
    """A server-side dry run of a pod that asks for a macvtap network and requests nothing: whatever admission
    returns is what a VM pod would get. Nothing is created."""
    if nads is None:
        try:
            nads = kube.list(r.NAD)
        except ForbiddenError:
            return rules.Proof(rules.UNKNOWN, "forbidden: the proof needs list network-attachment-definitions")
    target = probe_target(nads, excluded)
    if target is None:
        return rules.Proof(rules.UNKNOWN, "no macvtap NAD with a resource to ask for (macvtapctl nad create)")
    nad, resource, ns = target
    ref = f"{nad['metadata'].get('namespace', 'default')}/{nad['metadata']['name']}"
    pod = rules.probe_pod(nad["metadata"].get("namespace", "default"), nad["metadata"]["name"], ns)
    try:
        answer = kube.create(r.POD, pod, ns, dry_run=DryRun.SERVER)
    except ForbiddenError as exc:
        # Admission refusing the pod (a webhook down under failurePolicy Fail, NRI's "could not find network
        # attachment definition") is 403 too: it is an answer about injection, RBAC's is not.
        if "admission webhook" in exc.message or "failed calling webhook" in exc.message:
            return rules.Proof(rules.MISSING, f"admission refused a pod asking for {ref}: {exc.message}", ref)
        return rules.Proof(rules.UNKNOWN, f"the proof needs create pods (dry run) in namespace {ns}: "
                           f"{exc.message}", ref)
    except MacvtapctlError as exc:
        if "webhook" in exc.message:
            return rules.Proof(rules.MISSING, f"admission refused a pod asking for {ref}: {exc.message}", ref)
        return rules.Proof(rules.UNKNOWN, f"dry run of a pod asking for {ref}: {exc.message}", ref)
    return rules.judge(answer, resource, ref)


def wait_rolled_out(kube: Kube, report: Reporter, namespace: str, limit: float) -> None:
    """install --injector --wait, first: every replica of the injector's Deployment updated and available, as
    `kubectl rollout status` waits (with failurePolicy Fail, one replica serving is one failure from refusing
    every pod that names a network)."""
    said = [""]

    def progress(caches: Caches) -> None:
        why = deployment_rollout(caches["deploy"].get(m.NAME))
        if why is not None and why != said[0]:
            report.info(f"waiting for deployment.apps/{m.NAME}: {why}")
            said[0] = why

    until(kube, [Watch("deploy", r.DEPLOYMENT, namespace, {"field_selector": f"metadata.name={m.NAME}"})],
          lambda caches: True if deployment_rollout(caches["deploy"].get(m.NAME)) is None else None, limit,
          f"deployment.apps/{m.NAME} to roll out", on_change=progress)
    report.info(f"deployment.apps/{m.NAME} rolled out: {m.REPLICAS} replicas available")


def wait_verified(kube: Kube, report: Reporter, namespace: str, limit: float) -> rules.Proof:
    """install --injector --wait: until a dry run comes back with the request (the Deployment has to be up and
    its endpoints known to the API server first). No macvtap NAD yet: said, not waited for."""
    deadline = time.monotonic() + limit
    last = ""
    while True:
        proof = prove(kube, excluded=("kube-system", namespace))
        if proof.verified:
            report.info(f"injection verified: {proof.detail}")
            return proof
        if proof.state == rules.UNKNOWN and proof.nad is None:
            report.warn(f"injection not verified: {proof.detail}")
            return proof
        if proof.detail != last:
            report.info(f"waiting for injection: {proof.detail}")
            last = proof.detail
        if time.monotonic() >= deadline:
            raise TimeoutExceeded(f"timed out after {limit:g}s waiting for injection: {proof.detail}")
        time.sleep(2.0)
