"""A small guest VM for the real node: Debian's kernel (extracted from its linux-image package, never installed)
and a busybox initramfs whose init brings up the NIC, runs one check and powers off; and the launcher step as
KubeVirt's macvtap binding does it: qemu in the pod's network namespace, as uid 107, with the macvtap's /dev/tapN
as a tap netdev fd and the guest NIC's MAC equal to the macvtap's.

KubeVirt registers the macvtap binding with `domainAttachmentType: tap`; libvirt then opens the existing /dev/tapN
and hands qemu the fd (`-netdev tap,fd=N`), and sets the guest MTU from the pod interface. Here qemu is started
directly (no libvirt daemon), with the same netdev and device arguments.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.harness.images import _layer, cache_dir, compile_static, write_oci_archive
from tests.harness.paths import NODE_SRC

SOURCES = NODE_SRC / "guest"
KERNEL_PACKAGE = "linux-image-6.1.0-56-amd64"  # pinned: the guest's kernel and virtio-net modules
MODULES = ["failover", "net_failover", "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
           "virtio_pci", "virtio_net"]
QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_UID = 107  # virt-launcher's qemu user


@dataclass(frozen=True)
class Artefacts:
    kernel: Path
    initramfs: Path


def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive (what the kernel unpacks as initramfs): (path, mode, data or symlink target)."""
    out = io.BytesIO()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        raw = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0]
        out.write(b"070701" + b"".join(f"{v:08x}".encode() for v in fields) + raw)
        out.write(b"\0" * (-(110 + len(raw)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))
    return out.getvalue()


def artefacts() -> Artefacts:
    """Kernel + initramfs, cached by the kernel package and the guest's sources."""
    sources = b"".join((SOURCES / f).read_bytes() for f in ("init.sh", "udhcpc.sh", "mvtguest.c"))
    key = hashlib.sha256(KERNEL_PACKAGE.encode() + sources).hexdigest()[:12]
    out = cache_dir() / f"guest-{key}"
    art = Artefacts(out / "vmlinuz", out / "initramfs.cpio")
    if art.kernel.exists() and art.initramfs.exists():
        return art
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        got = subprocess.run(["apt-get", "download", KERNEL_PACKAGE], cwd=t, check=False, capture_output=True)
        if got.returncode != 0:  # no or stale package lists on this machine
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(["apt-get", "download", KERNEL_PACKAGE], cwd=t, check=True, capture_output=True)
        deb = next(t.glob("*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(t / "x")], check=True)
        version = KERNEL_PACKAGE.removeprefix("linux-image-")
        mods = t / "x" / "lib" / "modules" / version
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
        applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
        entries: list[tuple[str, int, bytes]] = [(d, 0o40755, b"") for d in (
            "bin", "dev", "proc", "sys", "lib", "lib/modules", "tmp")]
        entries += [("bin/busybox", 0o100755, busybox.read_bytes()),
                    ("init", 0o100755, (SOURCES / "init.sh").read_bytes()),
                    ("bin/udhcpc.sh", 0o100755, (SOURCES / "udhcpc.sh").read_bytes()),
                    ("bin/mvtguest", 0o100755, compile_static(SOURCES / "mvtguest.c", t / "mvtguest").read_bytes())]
        entries += [(f"bin/{a}", 0o120777, b"busybox") for a in applets if a != "busybox"]
        for m in MODULES:
            found = next(mods.rglob(f"{m}.ko*"))
            data = found.read_bytes()
            if found.suffix == ".xz":
                import lzma

                data = lzma.decompress(data)
            entries.append((f"lib/modules/{m}.ko", 0o100644, data))
        out.mkdir(parents=True, exist_ok=True)
        (out / "initramfs.cpio.tmp").write_bytes(_cpio(entries))
        shutil.copy(t / "x" / "boot" / f"vmlinuz-{version}", out / "vmlinuz.tmp")
        (out / "initramfs.cpio.tmp").replace(art.initramfs)
        (out / "vmlinuz.tmp").replace(art.kernel)
    return art


CONTAINERDISK_IMAGE = "localhost/macvtapctl/guest-disk:e2e"


def boot_disk() -> Path:
    """A raw disk SeaBIOS boots: one FAT filesystem (no partition table) with syslinux in its boot sector, the
    kernel and the initramfs; `mvt.do=vm` on the kernel command line. Made without mounting anything: mkfs.fat
    writes a file, syslinux and mcopy reach into it through mtools. Cached with the guest's artefacts."""
    art = artefacts()
    out = art.kernel.parent / "disk.img"
    if out.exists() and _checksum_fits(out):
        return out
    for tool in ("mkfs.fat", "syslinux", "mcopy"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is required for the guest's boot disk (python3 tools/prereqs.py test)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "syslinux.cfg"
        cfg.write_text("DEFAULT vm\nPROMPT 0\nTIMEOUT 0\nLABEL vm\n  KERNEL vmlinuz\n  INITRD initrd\n"
                       "  APPEND console=ttyS0 quiet panic=-1 mvt.do=vm\n")
        size_kib = (art.kernel.stat().st_size + art.initramfs.stat().st_size) // 1024 + 4096
        tmp_img = out.with_suffix(".tmp")
        # Another volume ID (and mtools' timestamps) give another CRC32: try until it fits (_checksum_fits).
        for volume_id in range(64):
            tmp_img.unlink(missing_ok=True)
            subprocess.run(["mkfs.fat", "-C", "-n", "MVTGUEST", "-i", f"{volume_id:08x}", str(tmp_img),
                            str(size_kib)], check=True, capture_output=True)
            subprocess.run(["syslinux", "--install", str(tmp_img)], check=True, capture_output=True)
            for src, name in ((art.kernel, "vmlinuz"), (art.initramfs, "initrd"), (cfg, "syslinux.cfg")):
                subprocess.run(["mcopy", "-i", str(tmp_img), str(src), f"::{name}"], check=True,
                               capture_output=True)
            if _checksum_fits(tmp_img):
                break
        else:
            raise RuntimeError("no volume ID gave the guest disk a CRC32 below 2^31 in 64 tries")
        tmp_img.replace(out)
    return out


def _checksum_fits(disk: Path) -> bool:
    """virt-handler writes the containerDisk's CRC32 (a uint32) to the VMI's
    status.volumeStatus[].containerDiskVolume.checksum, which KubeVirt v1.7.0's CRD declares `format: int32`;
    Kubernetes v1.37 enforces the format, so a disk whose CRC32 is 2^31 or more leaves the VMI Scheduled for ever
    ("Checked value must be of type integer with format int32"), about every other build. A KubeVirt bug, not
    ours to patch: the guest disk is made so that it fits."""
    import zlib

    crc = 0
    with open(disk, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc < 2**31


def containerdisk_image(out_dir: Path) -> Path:
    """The guest as a KubeVirt containerDisk: FROM scratch, the disk at /disk/, readable by qemu's uid 107."""
    disk = boot_disk().read_bytes()
    return write_oci_archive(out_dir / "guest-disk.tar", CONTAINERDISK_IMAGE,
                             [_layer([("disk/guest.img", disk, 0o444)])], {})


def accelerator() -> tuple[str, str]:
    """(accel, vhost): KVM only where the CPU really has VT-x/AMD-V (a PVM host has /dev/kvm but stock kernels
    hang in it), vhost-net only where its device exists (`vhost=on` without it aborts qemu)."""
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    kvm = os.path.exists("/dev/kvm") and re.search(r"\b(vmx|svm)\b", flags) is not None
    vhost = Path("/dev/vhost-net").is_char_device()
    return ("kvm" if kvm else "tcg"), ("on" if vhost and kvm else "off")


@dataclass
class Guest:
    proc: subprocess.Popen[str]
    log: Path
    started: float

    def console(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, marker: str, timeout: float = 90) -> str:
        """The first complete console line starting with `marker`; fails with the console's tail otherwise. Only
        lines ended by a newline count: qemu writes the serial console as the guest sends it, so a read can end in
        the middle of a line (it did: "MVT-NIC mac=... mt")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.console().replace("\r", "").split("\n")[:-1]:
                if line.startswith(marker):
                    return line.strip()
            if self.proc.poll() is not None and marker not in self.console():
                break
            time.sleep(0.1)
        raise AssertionError(f"guest printed no {marker!r} within {timeout:.0f}s; console:\n{self.console()[-3000:]}")

    def nic(self) -> dict[str, str]:
        line = self.wait_for("MVT-NIC")
        return dict(kv.split("=", 1) for kv in line.split()[1:])

    def result(self, timeout: float = 90) -> str:
        return self.wait_for("MVT-RESULT", timeout).removeprefix("MVT-RESULT ").strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def launch(pod_pid: int, tap: str, mac: str, mtu: int, *, ip: str | None, action: str, workdir: Path) -> Guest:
    """Start the guest the way virt-launcher's libvirt does for a macvtap interface: in the pod's network
    namespace, as qemu's uid, with /dev/tapN opened by that uid and passed as fd 3."""
    art = artefacts()
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o755)  # qemu runs as uid 107
    kernel, initramfs = workdir / "vmlinuz", workdir / "initramfs.cpio"
    for src, dst in ((art.kernel, kernel), (art.initramfs, initramfs)):
        if not dst.exists():
            shutil.copy(src, dst)
            dst.chmod(0o644)
    if not Path(tap).is_char_device():  # `3<>` would create a plain file in its place
        raise AssertionError(f"{tap} is not a character device")
    accel, vhost = accelerator()
    append = f"console=ttyS0 quiet panic=-1 mvt.do={action}" + (f" mvt.ip={ip}" if ip else "")
    qemu = [QEMU, "-accel", accel, "-machine", "pc", "-m", "128", "-smp", "1", "-nodefaults", "-no-reboot",
            "-display", "none", "-serial", "stdio", "-kernel", str(kernel), "-initrd", str(initramfs),
            "-append", append, "-netdev", f"tap,id=n0,fd=3,vhost={vhost}",
            "-device", f"virtio-net-pci,netdev=n0,mac={mac},host_mtu={mtu}"]
    log = workdir / f"console-{mac.replace(':', '')}-{int(time.time() * 1000)}.log"
    out = open(log, "w")  # noqa: SIM115 - the guest's serial console, closed when qemu exits
    cmd = ["nsenter", f"--net=/proc/{pod_pid}/ns/net", f"--setuid={QEMU_UID}", f"--setgid={QEMU_UID}", "--",
           "/bin/sh", "-c", 'exec 3<>"$0"; exec "$@"', tap, *qemu]
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    out.close()
    print(f"guest {mac}: qemu accel={accel} vhost={vhost} action={action}")
    return Guest(proc, log, time.monotonic())
