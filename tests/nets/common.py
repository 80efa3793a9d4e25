"""Shared helpers for the nets tests: the fixtures folder, the manifest, and recording
a net into a fresh graph."""
from __future__ import annotations

import json
from pathlib import Path

import slimtriton as st
from slimtriton import slim

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / ".." / "shared" / "fixtures" / "tf_slim"


def load_manifest() -> dict:
    with open(FIXTURES / "nets_manifest.json") as f:
        return json.load(f)


def load_cases() -> dict:
    with open(FIXTURES / "cases.json") as f:
        return json.load(f)


def record(build, image_shape, arg_scope=None):
    """Record `build(images)` in a new graph (inside `arg_scope` if given).
    Returns (graph, images, (net, end_points))."""
    with st.Graph() as g:
        images = st.placeholder(list(image_shape), name="images")
        if arg_scope is None:
            out = build(images)
        else:
            with slim.arg_scope(arg_scope):
                out = build(images)
    return g, images, out


def variable_shapes(graph) -> dict:
    return {name: list(spec.shape) for name, spec in graph.variables.items()}


def end_point_shapes(end_points) -> dict:
    return {key: list(t.get_shape().as_list()) for key, t in end_points.items()}
