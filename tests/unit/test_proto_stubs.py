"""The checked-in device-plugin stubs match api.proto (regenerate with `make proto`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = Path("macvtapctl/agent/deviceplugin")


def test_stubs_are_not_stale(tmp_path: Path) -> None:
    (tmp_path / PKG).mkdir(parents=True)
    shutil.copy(REPO / PKG / "api.proto", tmp_path / PKG / "api.proto")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "--grpc_python_out=.",
                    "--pyi_out=.", str(PKG / "api.proto")], cwd=tmp_path, check=True)
    for name in ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"):
        fresh = (tmp_path / PKG / name).read_text()
        assert (REPO / PKG / name).read_text() == fresh, f"{PKG / name} is stale: run `make proto`"


def test_field_numbers_match_the_published_api() -> None:
    from macvtapctl.agent.deviceplugin import api_pb2 as pb

    def numbers(msg: type) -> dict[str, int]:
        return {f.name: f.number for f in msg.DESCRIPTOR.fields}

    assert numbers(pb.RegisterRequest) == {"version": 1, "endpoint": 2, "resource_name": 3, "options": 4}
    assert numbers(pb.Device) == {"ID": 1, "health": 2, "topology": 3}
    assert numbers(pb.ContainerAllocateResponse) == {"envs": 1, "mounts": 2, "devices": 3, "annotations": 4,
                                                     "cdi_devices": 5}
    assert numbers(pb.DeviceSpec) == {"container_path": 1, "host_path": 2, "permissions": 3}
    assert numbers(pb.ContainerPreferredAllocationRequest) == {
        "available_deviceIDs": 1, "must_include_deviceIDs": 2, "allocation_size": 3}
    assert pb.DESCRIPTOR.package == "v1beta1"
    assert [m.name for m in pb.DESCRIPTOR.services_by_name["DevicePlugin"].methods] == [
        "GetDevicePluginOptions", "ListAndWatch", "GetPreferredAllocation", "Allocate", "PreStartContainer"]
