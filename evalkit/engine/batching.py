"""Batch planning: sort by length, cut into batches under a token budget, restore input order.

Sorting by length keeps padding low; planning by a token budget (rows x padded length) instead of a
fixed row count keeps long prompts from blowing memory while short ones still batch widely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Batch:
    """indices: positions in the caller's list; padded_length: the longest member's length."""

    indices: tuple[int, ...]
    padded_length: int


def plan_batches(lengths: Sequence[int], *, max_rows: int, token_budget: int) -> list[Batch]:
    """Group items into batches, longest first, so that rows x padded length <= token_budget.

    A single item longer than the budget still gets a batch of its own. Ties in length keep input
    order, so the plan is a pure function of the lengths.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[Batch] = []
    current: list[int] = []
    for i in order:
        # Sorted descending: the first member of a batch fixes its padded length.
        padded = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= max_rows or (len(current) + 1) * padded > token_budget):
            batches.append(Batch(tuple(current), lengths[current[0]]))
            current = []
        current.append(i)
    if current:
        batches.append(Batch(tuple(current), lengths[current[0]]))
    return batches
