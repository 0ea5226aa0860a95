"""`macvtapctl version`: client, server and KubeVirt versions."""

from __future__ import annotations

import platform
import sys
from typing import Annotated, Any

import typer

from macvtapctl import __version__
from macvtapctl.cli.common import application
from macvtapctl.cli.settings import Settings
from macvtapctl.errors import MacvtapctlError

HELP = "Print the client, server and KubeVirt versions."


def git_version() -> str:
    """`git describe` of the checkout this package runs from (v0.1.0-dev+g1a2b3c4[.dirty] without a release tag),
    else the released version. A wheel has no .git beside it, so it always reports the release."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return f"v{__version__}"
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--tags", "--dirty=.dirty", "--always",
                              "--match", "v[0-9]*"], capture_output=True, text=True, timeout=2, check=True)
    except (OSError, subprocess.SubprocessError):
        return f"v{__version__}"
    described = out.stdout.strip()
    if described.startswith("v"):
        return described  # at or after a release tag: v0.2.0, v0.2.0-3-gabc1234
    return f"v{__version__}-dev+g{described}"


def client_version() -> dict[str, str]:
    return {
        "gitVersion": git_version(),
        "release": f"v{__version__}",
        "pythonVersion": platform.python_version(),
        "platform": f"{sys.platform}/{platform.machine()}",
    }


def version(
    ctx: typer.Context,
    client: Annotated[bool, typer.Option("--client", help="Only the client version; no cluster contact.")]
    = False,
) -> None:
    cli = application(ctx)
    settings = cli.settings
    fmt = cli.output_format(("table", "json", "yaml"))
    printer = cli.printer
    doc: dict[str, Any] = {"clientVersion": client_version()}
    failure: MacvtapctlError | None = None
    if not client:
        failure = _server_versions(settings, doc)
    if fmt == "table":
        printer.data(f"Client Version: {doc['clientVersion']['gitVersion']}\n")
        if "serverVersion" in doc:
            printer.data(f"Server Version: {doc['serverVersion'].get('gitVersion', 'unknown')}\n")
        if "kubevirtVersion" in doc:
            printer.data(f"KubeVirt Version: {doc['kubevirtVersion'] or 'not installed'}\n")
    else:
        printer.document(doc, fmt)
    if failure is not None:
        raise failure


def _server_versions(settings: Settings, doc: dict[str, Any]) -> MacvtapctlError | None:
    """Fill serverVersion and kubevirtVersion; return the error that stopped it, if any."""
    from macvtapctl.kube.client import Kube
    from macvtapctl.kube.lookup import kubevirt_version_summary

    try:
        with Kube.connect(settings) as kube:
            doc["serverVersion"] = kube.server_version()
            doc["kubevirtVersion"] = kubevirt_version_summary(kube)
    except MacvtapctlError as exc:
        return exc
    return None
