"""The krew plugin: `kubectl krew install macvtap` gets `kubectl macvtap`, the admin CLI.

The archive holds a `kubectl-macvtap` launcher and lib/: this project and its admin-side dependencies, installed
for CPython 3.11 on linux/amd64 (the agent's — grpcio, protobuf, pyroute2, prometheus_client, xxhash — stay out:
the agent runs from its image), plus LICENSE. It needs python3.11 on the admin's machine (the caveats say so).

    python tools/krew.py [--uri-base URL]   build/krew/kubectl-macvtap_vX_linux_amd64.tar.gz + build/krew/macvtap.yaml

plugins/macvtap.yaml is the manifest template krew-index automation fills per release ({{ .TagName }},
addURIAndSha); `render()` fills it the same way for a local archive, and tests validate both against krew's
documented format (validate() below) and with krew itself.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "plugins" / "macvtap.yaml"
AGENT_ONLY = {"grpcio", "protobuf", "pyroute2", "prometheus_client", "xxhash"}


def version() -> str:
    sys.path.insert(0, str(REPO))
    from macvtapctl import __version__

    return f"v{__version__}"


def admin_requirements() -> list[str]:
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if re.split(r"[<>=!~ ;\[]", d, maxsplit=1)[0] not in AGENT_ONLY]


LAUNCHER = """#!/bin/sh
# kubectl-macvtap from krew: this project and its admin-side dependencies in lib/ beside this script (krew links
# the script into its bin dir, hence readlink). The bundled extensions are built for CPython 3.11 on linux/amd64.
here=$(dirname "$(readlink -f "$0")")
py=$(command -v python3.11 || command -v python3)
PYTHONPATH="$here/lib" exec "$py" -s -m macvtapctl "$@"
"""


def build_archive(out_dir: Path) -> Path:
    """The plugin archive for linux/amd64: a launcher and lib/ (pip-installed for CPython 3.11)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run([*pip, "install", "--target", str(lib), "--only-binary=:all:", "--python-version", "3.11",
                        "--platform", "manylinux2014_x86_64", "--implementation", "cp", *admin_requirements()],
                       check=True, stdout=sys.stderr)
        subprocess.run([*pip, "install", "--target", str(lib), "--no-deps", str(REPO)], check=True,
                       stdout=sys.stderr)
        for junk in [*lib.glob("bin"), *lib.rglob("__pycache__")]:
            shutil.rmtree(junk, ignore_errors=True)
        archive = out_dir / f"kubectl-macvtap_{version()}_linux_amd64.tar.gz"

        def add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))

        with tarfile.open(archive, "w:gz") as tar:
            add(tar, "kubectl-macvtap", LAUNCHER.encode(), 0o755)
            add(tar, "LICENSE", (REPO / "LICENSE").read_bytes(), 0o644)
            for path in sorted(lib.rglob("*")):
                if path.is_file():
                    add(tar, f"lib/{path.relative_to(lib)}", path.read_bytes(), 0o644)
    return archive


def render(archive: Path, uri: str, homepage: str) -> dict[str, Any]:
    """The template with the release's tag, URI and sha256 filled in (what krew-release-bot does)."""
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    text = re.sub(r'\{\{ addURIAndSha "[^"]*" \.TagName \}\}', f"uri: {uri}\n    sha256: {sha}",
                  TEMPLATE.read_text())
    text = text.replace("{{ .TagName }}", version()).replace("{{ .Homepage }}", homepage)
    return dict(yaml.safe_load(text))


SEMVER = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def validate(manifest: dict[str, Any]) -> list[str]:
    """krew's documented plugin manifest rules (krew.sigs.k8s.io/docs/developer-guide/plugin-manifest), as a
    list of violations."""
    errs = []
    if manifest.get("apiVersion") != "krew.googlecontainertools.github.com/v1alpha2":
        errs.append("apiVersion must be krew.googlecontainertools.github.com/v1alpha2")
    if manifest.get("kind") != "Plugin":
        errs.append("kind must be Plugin")
    name = (manifest.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", str(name)):
        errs.append(f"metadata.name {name!r}: lowercase letters, digits and dashes")
    spec = manifest.get("spec") or {}
    if not SEMVER.match(str(spec.get("version", ""))):
        errs.append(f"spec.version {spec.get('version')!r} is not v-prefixed semver")
    for key in ("shortDescription", "homepage", "description"):
        if not spec.get(key):
            errs.append(f"spec.{key} is required")
    if len(str(spec.get("shortDescription", ""))) > 50:
        errs.append("spec.shortDescription must be at most 50 characters")
    platforms = spec.get("platforms") or []
    if not platforms:
        errs.append("spec.platforms must not be empty")
    for i, p in enumerate(platforms):
        where = f"spec.platforms[{i}]"
        labels = ((p.get("selector") or {}).get("matchLabels") or {})
        if not labels and not (p.get("selector") or {}).get("matchExpressions"):
            errs.append(f"{where}.selector must match os/arch")
        if not str(p.get("uri", "")).startswith(("https://", "http://", "file://")) and "{{" not in str(p):
            errs.append(f"{where}.uri must be a URL")
        if "sha256" in p and not re.fullmatch(r"[0-9a-f]{64}", str(p["sha256"])):
            errs.append(f"{where}.sha256 must be 64 lowercase hex digits")
        if not p.get("bin") or ".." in str(p.get("bin")):
            errs.append(f"{where}.bin is required and must stay inside the archive")
        for f in p.get("files") or []:
            if not f.get("from") or ".." in str(f.get("from")) or ".." in str(f.get("to", "")):
                errs.append(f"{where}.files: from/to must stay inside the archive")
    return errs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri-base", default=None, help="where the archive will be served (default: file://)")
    ap.add_argument("--homepage", default=(REPO / "README.md").as_uri(), help="the project's public home")
    a = ap.parse_args()
    out = REPO / "build" / "krew"
    archive = build_archive(out)
    uri = f"{a.uri_base.rstrip('/')}/{archive.name}" if a.uri_base else archive.resolve().as_uri()
    manifest = render(archive, uri, a.homepage)
    problems = validate(manifest)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    (out / "macvtap.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    print(f"{archive} ({archive.stat().st_size / 2**20:.1f} MiB)\n{out / 'macvtap.yaml'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
