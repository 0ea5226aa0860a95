"""The YAML emitter writes exactly what PyYAML (a YAML 1.1 reader, like cloud-init's) reads back."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from macvtapctl import yamlout

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
    st.text(max_size=30),
    st.sampled_from(["yes", "No", "on", "OFF", "null", "~", "1.5", "10", "0x1F", "012", "1e5", "2001-12-14",
                     "12:30:00", "02:00:00:00:00:10", "1Gi", "100m", "-", "- x", "a: b", "#c", "*x", "&y", "!t",
                     "[a]", "{b}", "'q'", '"q"', "%p", "@at", "`b`", "", " lead", "trail ", "x\n", "a\nb",
                     "a\nb\n\n", "\nfirst", "tab\tin", "ü", "emoji 😀", "\u2028", "a\r\nb", "|", ">", "?"]),
)
keys = st.one_of(st.text(min_size=1, max_size=15),
                 st.sampled_from(["apiVersion", "k8s.v1.cni.cncf.io/resourceName", "yes", "on", "1", "null", "-"]))
data = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=25)


@settings(max_examples=400)
@given(data)
def test_round_trip_through_pyyaml(value) -> None:
    text = yamlout.dump(value)
    assert yaml.safe_load(text) == value


@given(st.lists(st.dictionaries(keys, data, min_size=1, max_size=3), min_size=1, max_size=3))
def test_document_stream(docs) -> None:
    assert list(yaml.safe_load_all(yamlout.dump_all(docs))) == docs


def test_layout_matches_kubectl_style() -> None:
    doc = {"metadata": {"name": "a", "labels": {}}, "spec": {"items": [{"name": "x", "ports": [1, 2]}, "s"],
                                                             "script": "line1\nline2\n", "empty": []}}
    assert yamlout.dump(doc) == (
        "metadata:\n  name: a\n  labels: {}\nspec:\n  items:\n  - name: x\n    ports:\n    - 1\n    - 2\n  - s\n"
        "  script: |\n    line1\n    line2\n  empty: []\n")


@pytest.mark.parametrize(("value", "text"), [("1Gi", "1Gi"), ("10", '"10"'), ("yes", '"yes"'),
                                             ("02:00:00:00:00:10", '"02:00:00:00:00:10"'), ("a/b.c", "a/b.c")])
def test_quoting(value: str, text: str) -> None:
    assert yamlout.scalar(value) == text
