"""Handler for ``mlswg/tree-math.json`` (RFC 9420 Appendix C)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mls.conformance.core import expect_eq
from mls.tree import math as tm


def case_ids(data: Any) -> list[str]:
    return [f"n_leaves={c['n_leaves']}" for c in data]


def _opt(fn: Callable[..., int], *args: int) -> int | None:
    try:
        return fn(*args)
    except ValueError:
        return None


def check(case: Any) -> None:
    n = case["n_leaves"]
    expect_eq("n_nodes", tm.node_width(n), case["n_nodes"])
    expect_eq("root", tm.root(n), case["root"])
    for x in range(case["n_nodes"]):
        expect_eq(f"left[{x}]", _opt(tm.left, x), case["left"][x])
        expect_eq(f"right[{x}]", _opt(tm.right, x), case["right"][x])
        expect_eq(f"parent[{x}]", _opt(tm.parent, x, n), case["parent"][x])
        expect_eq(f"sibling[{x}]", _opt(tm.sibling, x, n), case["sibling"][x])
