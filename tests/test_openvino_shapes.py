"""models/openvino_shapes.StaticShapes: when a recurring input shape gets its own compilation, and which are kept."""
from __future__ import annotations

import pytest

from models.openvino_shapes import StaticShapes


def recording() -> tuple[StaticShapes, list]:
    made: list = []

    def compile_for(shape):
        made.append(shape)
        return f"static {shape}"

    return StaticShapes(compile_for, after=3, keep=2), made


def test_a_shape_compiles_on_its_after_th_call_and_once():
    shapes, made = recording()
    a, b = (1, 3, 64, 64), (1, 3, 64, 32)
    assert [shapes.get(a), shapes.get(b), shapes.get(a)] == [None, None, None]
    assert shapes.get(a) == f"static {a}" and made == [a]
    assert [shapes.get(a) for _ in range(5)] == [f"static {a}"] * 5 and made == [a]
    assert shapes.get(b) is None  # b came twice only
    assert shapes.get([1, 3, 64, 32]) == f"static {b}"  # any sequence of ints names the shape


def test_least_recently_used_is_dropped_and_must_recur_again():
    shapes, made = recording()
    a, b, c = (1, 3, 64, 64), (1, 3, 64, 32), (2, 3, 64, 64)
    for s in (a, b):
        for _ in range(3):
            shapes.get(s)
    shapes.get(a)  # a used last: b is the least recently used
    for _ in range(3):
        shapes.get(c)
    assert list(shapes.compiled) == [a, c] and made == [a, b, c]
    assert [shapes.get(b) for _ in range(3)] == [None, None, f"static {b}"]  # counted from zero again
    assert list(shapes.compiled) == [c, b] and made == [a, b, c, b]


def test_bad_limits_are_refused():
    for after, keep in ((0, 4), (16, 0)):
        with pytest.raises(ValueError, match="must be >= 1"):
            StaticShapes(lambda s: s, after=after, keep=keep)
