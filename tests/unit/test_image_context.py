"""Issue 13.7: the image never ships a shim built outside its own build stage."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_build_context_excludes_a_host_built_shim() -> None:
    for name in (".containerignore", ".dockerignore"):
        lines = (REPO / name).read_text().splitlines()
        assert "macvtapctl/agent/shim/macvtap" in lines, name


def test_the_build_stage_always_compiles_the_shim() -> None:
    steps = [line for line in (REPO / "Containerfile").read_text().splitlines() if line.startswith("RUN ")]
    assert any("make -B shim" in step for step in steps)
