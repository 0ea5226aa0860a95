"""Container images for the real node, built here without a registry: OCI archives that `ctr images import` reads.

- the sandbox (pause) image: a static C binary that holds the pod's namespaces;
- the test-pod image: busybox-static (Debian's package) and `taptool`, a static C helper that sends frames through
  a pod's /dev/tapN and waits for the reply;
- the agent image: a Debian bookworm base made with mmdebstrap from Debian's packages (cached: it changes only
  with the suite and package list) plus a layer with this project installed by pip and the static CNI shim.
  The Containerfile builds the same image FROM the public Python image where a registry is reachable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.harness.paths import INJECTOR_BUILD, NODE_SRC, REPO

PAUSE_IMAGE = "localhost/macvtapctl/pause:e2e"
TEST_IMAGE = "localhost/macvtapctl/testpod:e2e"
AGENT_IMAGE = "localhost/macvtapctl/agent:e2e"
INJECTOR_IMAGE = "localhost/macvtapctl/network-resources-injector:e2e"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ["python3-minimal", "libpython3.11-stdlib"]


def cache_dir() -> Path:
    env = os.environ.get("MACVTAPCTL_TESTENV_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "macvtapctl-testenv"
    base.mkdir(parents=True, exist_ok=True)
    return base


def compile_static(src: Path, out: Path) -> Path:
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-static", "-Wall", "-Wextra", "-Werror", "-o", str(out),
                    str(src)], check=True)
    return out


def _layer(files: Iterable[tuple[str, bytes | str | None, int]], *,
           owners: Mapping[str, tuple[int, int]] | None = None,
           xattrs: Mapping[str, Mapping[str, bytes]] | None = None) -> bytes:
    """An uncompressed layer tar from (path, bytes, symlink target as str, or None for a directory, mode); parent
    dirs are added. `owners` gives a path's (uid, gid), root's by default; `xattrs` a path's extended attributes,
    written as PAX SCHILY.xattr records, which containerd and GNU tar restore (a file capability, for one)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for path, content, mode in files:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(path.strip("/"))
            info.mode = mode
            info.uid, info.gid = (owners or {}).get(path, (0, 0))
            # Binary values ride through tarfile's str headers undamaged (hdrcharset=BINARY).
            info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                                for k, v in (xattrs or {}).get(path, {}).items()}
            if content is None:
                dirs.add(info.name)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _dir_layer(root: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(root, arcname=prefix.strip("/"), filter=_owned_by_root)
    return buf.getvalue()


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_oci_archive(out: Path, ref: str, layers: list[bytes], config: dict[str, Any]) -> Path:
    """An OCI image layout in a tar; the image name rides on the annotations `ctr images import` reads."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, Any]:
        digest = _sha(data)
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer_descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)} for layer in layers]
    cfg = {"architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": [_sha(layer) for layer in layers]}}
    cfg_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(json.dumps(cfg).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg_desc, "layers": layer_descs}
    man_desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **blob(json.dumps(manifest).encode()),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": ref,
                                "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [man_desc]}
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.split(":", 1)[1], data)
    tmp.replace(out)
    return out


def pause_image(out_dir: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        binary = compile_static(NODE_SRC / "images" / "pause.c", Path(tmp) / "pause").read_bytes()
    return write_oci_archive(out_dir / "pause.tar", PAUSE_IMAGE, [_layer([("pause", binary, 0o755)])],
                             {"Entrypoint": ["/pause"]})


def test_image(out_dir: Path) -> Path:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
    with tempfile.TemporaryDirectory() as tmp:
        taptool = compile_static(NODE_SRC / "images" / "taptool.c", Path(tmp) / "taptool").read_bytes()
    files: list[tuple[str, bytes | str, int]] = [("bin/busybox", busybox.read_bytes(), 0o755),
                                                 ("usr/local/bin/taptool", taptool, 0o755)]
    files += [(f"bin/{a}", "busybox", 0o777) for a in applets if a != "busybox"]
    files += [("tmp/.keep", b"", 0o644), ("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n", 0o644)]
    return write_oci_archive(out_dir / "testpod.tar", TEST_IMAGE, [_layer(files)],
                             {"Env": ["PATH=/usr/local/bin:/bin"], "Cmd": ["sleep", "infinity"]})


def injector_webhook() -> Path:
    """network-resources-injector's webhook binary, built unmodified from the Go module proxy (tests/injector/build.sh,
    cached; it prints its directory last)."""
    build = subprocess.run(["bash", str(INJECTOR_BUILD)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(build.stdout.strip().splitlines()[-1]) / "webhook"


def injector_image(out_dir: Path) -> Path:
    """The webhook at /usr/bin/webhook as upstream's image has it: what `install --injector --injector-image` runs
    on the real node in place of ghcr.io's (no registry here). Static (CGO off), so nothing else is needed."""
    files: list[tuple[str, bytes | str | None, int]] = [("usr/bin/webhook", injector_webhook().read_bytes(), 0o755),
                                                        ("tmp/.keep", b"", 0o644)]
    return write_oci_archive(out_dir / "injector.tar", INJECTOR_IMAGE, [_layer(files)],
                             {"Env": ["PATH=/usr/bin:/bin"], "User": "10000:10000"})


def base_layer(suite: str = BASE_SUITE, packages: Sequence[str] = BASE_PACKAGES, name: str = "agent-base") -> Path:
    """Debian `suite` with `packages` (by default: bookworm with Python 3.11), from Debian's packages (mmdebstrap),
    cached by its recipe as <cache>/<name>-<hash>.tar."""
    recipe = json.dumps([suite, list(packages), "minbase", "nodocs"])
    out = cache_dir() / f"{name}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.tar"
    if out.exists():
        return out
    if shutil.which("mmdebstrap") is None:
        raise RuntimeError(f"mmdebstrap is required to build the image base {name} (apt-get install mmdebstrap)")
    tmp = out.with_suffix(".tmp")
    subprocess.run(["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar", "--quiet",
                    "--include=" + ",".join(packages),
                    *[f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")],
                    suite, str(tmp)], check=True, stdout=sys.stderr)
    tmp.replace(out)
    return out


def agent_image(out_dir: Path, shim: Path, ref: str = AGENT_IMAGE, name: str = "agent.tar") -> Path:
    """The project as pip installs it (with its dependencies) into /opt/macvtapctl, on the Debian base."""
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        # The host's Python is Debian 12's 3.11 too, so the wheels pip picks here fit the image.
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run([*pip, "wheel", "--no-deps", "--wheel-dir", tmp, str(REPO)], check=True, stdout=sys.stderr)
        wheel = next(Path(tmp).glob("macvtapctl-*.whl"))
        subprocess.run([*pip, "install", "--target", str(site), str(wheel)], check=True, stdout=sys.stderr)
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(site)], check=True,
                       stdout=sys.stderr)
        app = _dir_layer(site, "opt/macvtapctl/site")
    wrapper = b'#!/bin/sh\nexec /usr/bin/python3 -m macvtapctl "$@"\n'
    extra = _layer([("usr/local/bin/macvtapctl", wrapper, 0o755),
                    ("usr/local/lib/macvtapctl/macvtap", shim.read_bytes(), 0o755)])
    return write_oci_archive(out_dir / name, ref, [base_layer().read_bytes(), app, extra], {
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONPATH=/opt/macvtapctl/site",
                "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"],
        "Entrypoint": ["macvtapctl"], "Cmd": ["agent"]})


def manifest_digest(archive: Path) -> str:
    """The digest of the image manifest an OCI archive (write_oci_archive's) indexes: what a registry serves it by."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return str(json.load(member)["manifests"][0]["digest"])
