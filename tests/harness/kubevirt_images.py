"""KubeVirt's five runtime images, assembled without a registry or a container engine: OCI archives (the format
tests/harness/images.py writes, which `ctr -n k8s.io images import` reads) named localhost/kubevirt/<name>:<version>,
so that virt-operator finds them with `imageRegistry: localhost/kubevirt`, `imageTag: <version>`.

    python3 -m tests.harness.kubevirt_images rootfs handler|launcher         build the Debian root filesystem if missing; print its path
    python3 -m tests.harness.kubevirt_images rootfs-path handler|launcher    print where it is cached (built or not)
    python3 -m tests.harness.kubevirt_images rootfs-suite handler|launcher   print its Debian suite
    python3 -m tests.harness.kubevirt_images image NAME --version V --bin DIR --src DIR --out DIR

NAME is virt-operator, virt-api, virt-controller, virt-handler or virt-launcher; --bin holds the binaries
tests/kubevirt/runtime/build.sh compiled, --src is the kubevirt.io/kubevirt module zip's directory, whose small
config files (qemu.conf, virtqemud.conf, nsswitch.conf, the qemu hook, node-labeller.sh) are copied in at build time.
Upstream's recipe is cmd/<name>/BUILD.bazel and the root BUILD.bazel of that module; each image here has the same
files, entrypoint and user, with these differences, all forced by building from Debian instead of distroless and
CentOS Stream 9's RPMs (hack/rpm-deps.sh):

1. Bases. Infra images (operator, api, controller): no base image, only what their static binaries use: /etc/passwd
   with upstream's nonroot-user 1001 (root BUILD.bazel, `nonroot-user`), /etc/group, /tmp (1777) and the CA bundle,
   which distroless/base-debian12 carries; the bundle is Debian's ca-certificates, taken from the handler's root
   filesystem. Handler: Debian bookworm (its cgo binaries link the build host's glibc 2.36) with upstream's
   `handlerbase` by Debian's names, less xorriso and selinux-policy. Launcher: Debian trixie (libvirt 11.3,
   QEMU 10.0, where bookworm has 9.0 and 7.2; KubeVirt v1.7.0 is tested with 10.10 and 9.1; mmdebstrap bootstraps
   trixie from deb.debian.org here; glibc 2.41 runs binaries linked against 2.36) with `launcherbase` less what
   only passt, vTPM, virtiofs, EFI, USB or SELinux use (passt, swtpm-tools, virtiofsd, edk2-ovmf,
   qemu-kvm-device-usb-*, selinux-policy) and nmap-ncat. Not in any image: acl, curl-minimal, vim-minimal (upstream
   adds them to all). ca-certificates in the handler and the launcher, as distroless/base-debian12 has it.
2. /usr/sbin/virtqemud is a shell script that starts Debian's monolithic libvirtd: Debian (bookworm and trixie)
   ships no modular virtqemud, and virt-launcher starts /usr/sbin/virtqemud (pkg/virt-launcher/virtwrap/util/
   libvirt_helper.go) and dials <runtime dir>/libvirt/virtqemud-sock (cmd/virt-launcher/virt-launcher.go), as does
   virsh in node-labeller.sh. The script names libvirtd's socket virtqemud-sock as well (a symlink to libvirt-sock in
   /run/libvirt as root, in $XDG_RUNTIME_DIR/libvirt otherwise: virt-controller sets XDG_RUNTIME_DIR=/var/run,
   pkg/virt-controller/services/rendercontainer.go), gives libvirtd virtqemud's default config file when it is
   given none (/etc/libvirt/virtqemud.conf as root: node-labeller.sh's `virtqemud -d`), and execs libvirtd with the
   same arguments. Research note §2.
3. /etc/libvirt/qemu.conf is upstream's cmd/virt-launcher/qemu.conf plus `security_driver = "none"`: Debian builds
   libvirt with the AppArmor security driver, which, on a host with AppArmor, would have libvirt run virt-aa-helper
   and load a profile per VM from inside the container (research note §2). (This host has no AppArmor, so it is
   not observed here.) The file is also 0644 where Debian's is 0600: virt-launcher, as 107, copies it.
4. /var/run is the relative symlink ../run: Debian's is absolute (/run), and virt-handler reaches the launcher's
   files through /proc/<pid>/root/var/run/..., where an absolute link resolves against virt-handler's own root, not
   the container's; upstream v1.8 adds the same link for that reason (comment in its cmd/virt-launcher/BUILD.bazel).
5. No passt-repair in the handler: bookworm's passt (2023-03-09) has none; it serves only the live migration of
   VMs on the passt binding.
6. No empty /usr/lib64/qemu-kvm in the launcher: upstream's is a moby workaround for CentOS's QEMU module
   directory; Debian's QEMU has its modules in /usr/lib/x86_64-linux-gnu/qemu.
7. The QEMU binary is Debian's /usr/bin/qemu-system-x86_64 (CentOS: /usr/libexec/qemu-kvm): nothing to change,
   KubeVirt sets no <emulator> and libvirt picks the one its capabilities list; virt-handler and
   virt-launcher-monitor find the process by the prefixes qemu-system and qemu-kvm.
8. Upstream's passwd and group files (qemu 107 and root; nonroot-user 1001 in the infra images) replace the base's
   whole files, as upstream's replace distroless', with one Debian-forced addition in the launcher: libvirt-qemu
   (64055, the id Debian's libvirt-daemon-driver-qemu.postinst allocates) in both. Debian builds libvirt with QEMU's
   default user and group libvirt-qemu (CentOS: qemu), and the system-mode QEMU driver resolves them before it
   reads qemu.conf's user = "qemu": without them node-labeller.sh's libvirtd fails with "Failed to parse user
   'libvirt-qemu'". Debian's other system users and groups (daemon, _apt, nobody, polkitd, ...) are gone; the few
   files they own in the base (apt's partial dirs, shadow's group, /var/lib/libvirt/qemu) keep their numeric ids.
9. Debian's dependencies bring what CentOS's packages do not: polkitd, dbus, systemd and dmidecode come with the
   launcher's libvirt-daemon (none of them runs; libvirtd logs that dmidecode cannot read /dev/mem); mmdebstrap's
   bookworm has usrmerge and its Perl (init-system-helpers, Essential, depends on it) in the handler.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import tarfile
from pathlib import Path

from tests.harness import images as node

REGISTRY = "localhost/kubevirt"
INFRA = {"virt-operator": ["virt-operator", "csv-generator"], "virt-api": ["virt-api"],
         "virt-controller": ["virt-controller"]}
LAUNCHER_BINARIES = ["virt-launcher", "virt-launcher-monitor", "virt-probe", "virt-tail", "virt-freezer",
                     "container-disk"]
# Debian's names for upstream's package sets (hack/rpm-deps.sh handlerbase / launcherbase), as the research note's
# recipe (§8) lists them; bash, coreutils, findutils and tar are Essential anyway.
ROOTFS: dict[str, tuple[str, list[str]]] = {
    "handler": ("bookworm", ["bash", "ca-certificates", "coreutils", "findutils", "iproute2", "nftables", "procps",
                             "qemu-utils", "tar", "util-linux"]),
    "launcher": ("trixie", ["bash", "ca-certificates", "coreutils", "findutils", "ipxe-qemu", "iproute2",
                            "libvirt-clients", "libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-daemon-log",
                            "nftables", "procps", "qemu-system-x86", "qemu-utils", "seabios", "tar", "xorriso"]),
}
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # distroless' own
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
QEMU_UID = 107  # pkg/util/util.go NonRootUID: the launcher pod runs as 107
# Debian's libvirt-daemon-driver-qemu.postinst creates it so, with its group: libvirt's compiled-in default QEMU user
DEBIAN_LIBVIRT_QEMU = ("libvirt-qemu", 64055, "Libvirt Qemu", "/var/lib/libvirt", "/usr/sbin/nologin")
CAP_NET_BIND_SERVICE = 10  # linux/capability.h
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001

# Debian-forced change 2 (see the module's docstring).
VIRTQEMUD_SHIM = b"""#!/bin/sh
# Debian ships libvirt's monolithic libvirtd, not the modular virtqemud that KubeVirt starts and dials: libvirtd
# serves the same QEMU driver on libvirt-sock. Name that socket virtqemud-sock too, in the runtime directory
# libvirtd uses (system: /run/libvirt; session: $XDG_RUNTIME_DIR/libvirt), give libvirtd virtqemud's default
# config file when no -f is given, and become libvirtd with the same arguments.
set -e
if [ "$(id -u)" = 0 ]; then
  dir=/run/libvirt conf=/etc/libvirt/virtqemud.conf
else
  dir=${XDG_RUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}/libvirt
  conf=${XDG_CONFIG_HOME:-$HOME/.config}/libvirt/virtqemud.conf
fi
mkdir -p "$dir"
ln -sfn libvirt-sock "$dir/virtqemud-sock"
case " $* " in
  *" -f "* | *" --config "* | *" --config="*) ;;
  *) if [ -e "$conf" ]; then set -- -f "$conf" "$@"; fi ;;
esac
exec /usr/sbin/libvirtd "$@"
"""


def file_capability(*caps: int) -> bytes:
    """The security.capability value `setcap <caps>+ep` writes: struct vfs_cap_data revision 2
    (linux/capability.h), little-endian u32s: magic_etc, then {permitted, inheritable} of caps 0-31 and 32-63."""
    permitted = 0
    for cap in caps:
        permitted |= 1 << cap
    return struct.pack("<5I", VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, permitted & 0xFFFFFFFF, 0,
                       permitted >> 32, 0)


def rootfs_path(name: str) -> Path:
    """Where node.base_layer caches this root filesystem (the same recipe hash)."""
    suite, packages = ROOTFS[name]
    recipe = json.dumps([suite, packages, "minbase", "nodocs"])
    return node.cache_dir() / f"kubevirt-{name}-rootfs-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.tar"


def rootfs(name: str) -> Path:
    """The Debian root filesystem tar of the handler or the launcher, bootstrapped if not cached."""
    suite, packages = ROOTFS[name]
    path = node.base_layer(suite, packages, f"kubevirt-{name}-rootfs")
    assert path == rootfs_path(name), (path, rootfs_path(name))
    return path


def _passwd(users: list[tuple[str, int, str, str, str]]) -> list[tuple[str, bytes | str | None, int]]:
    """/etc/passwd and /etc/group as rules_docker's passwd_file and group_file write them (upstream's BUILD.bazel
    entries): (name, id, gecos, home, shell), each user with its own group of the same id."""
    passwd = "".join(f"{n}:x:{i}:{i}:{gecos}:{home}:{shell}\n" for n, i, gecos, home, shell in users)
    group = "".join(f"{n}:x:{i}:\n" for n, i, _, _, _ in users)
    return [("etc/passwd", passwd.encode(), 0o644), ("etc/group", group.encode(), 0o644)]


def _binaries(bin_dir: Path, names: list[str]) -> list[tuple[str, bytes | str | None, int]]:
    return [(f"usr/bin/{n}", (bin_dir / n).read_bytes(), 0o755) for n in names]


def _member(tar_path: Path, name: str) -> bytes:
    with tarfile.open(tar_path) as tar:
        f = tar.extractfile(f"./{name}")
        if f is None:
            raise RuntimeError(f"{name} is not a regular file in {tar_path}")
        return f.read()


def infra_image(name: str, version: str, bin_dir: Path, out_dir: Path) -> Path:
    files = [("tmp", None, 0o1777), (CA_BUNDLE, _member(rootfs("handler"), CA_BUNDLE), 0o644),
             (".version", f"{version}\n".encode(), 0o644),
             *_passwd([("nonroot-user", 1001, "", "/home/nonroot-user", "/bin/bash")]),
             *_binaries(bin_dir, INFRA[name])]
    return node.write_oci_archive(out_dir / f"{name}.tar", f"{REGISTRY}/{name}:{version}", [node._layer(files)], {
        "User": "1001", "Env": [PATH_ENV, "SSL_CERT_FILE=/" + CA_BUNDLE], "Entrypoint": [f"/usr/bin/{name}"]})


def handler_image(version: str, bin_dir: Path, src: Path, out_dir: Path) -> Path:
    files = [(".version", f"{version}\n".encode(), 0o644),
             ("etc/nsswitch.conf", (src / "cmd/virt-handler/nsswitch.conf").read_bytes(), 0o644),
             *_passwd([("qemu", QEMU_UID, "", "", "/bin/bash"), ("root", 0, "root", "/root", "/bin/bash")]),
             *_binaries(bin_dir, ["virt-handler", "virt-chroot"])]
    return node.write_oci_archive(out_dir / "virt-handler.tar", f"{REGISTRY}/virt-handler:{version}",
                                  [rootfs("handler").read_bytes(), node._layer(files)],
                                  {"Env": [PATH_ENV], "Entrypoint": ["/usr/bin/virt-handler"]})


def launcher_image(version: str, bin_dir: Path, src: Path, out_dir: Path) -> Path:
    launcher = src / "cmd/virt-launcher"
    qemu_conf = (launcher / "qemu.conf").read_text()
    qemu_conf += ("" if qemu_conf.endswith("\n") else "\n") + 'security_driver = "none"\n'  # Debian-forced 3
    files: list[tuple[str, bytes | str | None, int]] = [
        ("home/qemu", None, 0o755),
        ("var/run", "../run", 0o777),  # Debian-forced 4
        (".version", f"{version}\n".encode(), 0o644),
        ("etc/nsswitch.conf", (launcher / "nsswitch.conf").read_bytes(), 0o644),
        *_passwd([("qemu", QEMU_UID, "", "/home/qemu", "/bin/bash"), ("root", 0, "root", "/root", "/bin/bash"),
                  DEBIAN_LIBVIRT_QEMU]),  # Debian-forced 8
        ("etc/libvirt/qemu.conf", qemu_conf.encode(), 0o644),
        ("etc/libvirt/virtqemud.conf", (launcher / "virtqemud.conf").read_bytes(), 0o644),
        ("etc/libvirt/hooks/qemu", (launcher / "qemu").read_bytes(), 0o755),
        ("usr/sbin/virtqemud", VIRTQEMUD_SHIM, 0o755),
        *_binaries(bin_dir, LAUNCHER_BINARIES),
        ("usr/bin/node-labeller.sh", (launcher / "node-labeller/node-labeller.sh").read_bytes(), 0o755),
    ]
    # virt-launcher-monitor raises CAP_NET_BIND_SERVICE into its children's ambient set: a non-root process under
    # no_new_privs holds it only through this file capability (BUILD.bazel `setcaps`).
    layer = node._layer(files, owners={"home/qemu": (QEMU_UID, QEMU_UID)},
                        xattrs={"usr/bin/virt-launcher-monitor":
                                {"security.capability": file_capability(CAP_NET_BIND_SERVICE)}})
    return node.write_oci_archive(out_dir / "virt-launcher.tar", f"{REGISTRY}/virt-launcher:{version}",
                                  [rootfs("launcher").read_bytes(), layer],
                                  {"Env": [PATH_ENV], "Entrypoint": ["/usr/bin/virt-launcher"]})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="cmd", required=True)
    for cmd in ("rootfs", "rootfs-path", "rootfs-suite"):
        sub.add_parser(cmd).add_argument("name", choices=sorted(ROOTFS))
    img = sub.add_parser("image")
    img.add_argument("name", choices=[*INFRA, "virt-handler", "virt-launcher"])
    for opt in ("--version", "--bin", "--src", "--out"):
        img.add_argument(opt, required=True)
    args = p.parse_args(argv)
    if args.cmd == "rootfs":
        print(rootfs(args.name))
    elif args.cmd == "rootfs-path":
        print(rootfs_path(args.name))
    elif args.cmd == "rootfs-suite":
        print(f"Debian {ROOTFS[args.name][0]}")
    else:
        bin_dir, src, out = Path(args.bin), Path(args.src), Path(args.out)
        if args.name in INFRA:
            infra_image(args.name, args.version, bin_dir, out)
        elif args.name == "virt-handler":
            handler_image(args.version, bin_dir, src, out)
        else:
            launcher_image(args.version, bin_dir, src, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
