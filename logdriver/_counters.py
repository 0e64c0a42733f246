"""Counters that add up: one record per object, summed over many (closed FIFOs, finished pipelines)."""

from __future__ import annotations

import dataclasses
from typing import Self


class Counters:
    """Mixin for a dataclass of integer counters: ``add`` sums another record into this one."""

    __slots__ = ()

    def add(self, other: Self) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
