"""Tasks of benchmarks/chord_scale.py: a chord's members and its callback."""

from __future__ import annotations

from supervisor import task


@task(name="bench.member")
def member(index: int) -> int:
    return index


@task(name="bench.callback")
def callback(values: list[int]) -> int:
    return len(values)
