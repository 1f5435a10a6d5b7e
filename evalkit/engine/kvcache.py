"""A key/value cache for continuous batching: rows join, leave and grow without copying the cache
at every step.

transformers' `DynamicLayer` appends a token with `torch.cat`, which copies a layer's whole cache at
every decode step: for a 135M model with 16 rows of 400 tokens that is ~0.3 GB moved per step, more
time than the step's matmuls on a CPU. Here each layer keeps its keys and values in a buffer with
spare room along the time axis; a step writes one column in place and the model sees a view.

All rows share one time axis, left-padded (the attention mask hides the padding); rows that join
later are aligned to the right end, so the newest token of every row sits in the last column.
Shapes: buffers are [rows, kv_heads, capacity, head_dim]; `length` columns are in use.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

# Capacity grows in steps of this many columns, so a buffer is not re-allocated every few tokens.
_GROWTH = 64


class SlotLayer(DynamicLayer):
    """One layer's cache: `keys`/`values` are views of the first `length` columns of the buffers."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.kbuf: torch.Tensor | None = None
        self.vbuf: torch.Tensor | None = None
        self.length = 0
        # Columns the scheduler expects this layer to reach; the first allocation reserves them.
        self.capacity_hint = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def _view(self) -> None:
        assert self.kbuf is not None and self.vbuf is not None
        self.keys = self.kbuf[:, :, : self.length]
        self.values = self.vbuf[:, :, : self.length]

    def reserve(self, columns: int) -> None:
        """Make room for `columns` columns in total (existing ones kept)."""
        assert self.kbuf is not None and self.vbuf is not None
        if columns <= self.kbuf.shape[2]:
            return
        capacity = -(-max(columns, self.kbuf.shape[2] + _GROWTH) // _GROWTH) * _GROWTH
        rows, heads, _, dim = self.kbuf.shape
        kbuf = self.kbuf.new_zeros((rows, heads, capacity, dim))
        vbuf = self.vbuf.new_zeros((rows, heads, capacity, self.vbuf.shape[3]))
        kbuf[:, :, : self.length] = self.kbuf[:, :, : self.length]
        vbuf[:, :, : self.length] = self.vbuf[:, :, : self.length]
        self.kbuf, self.vbuf = kbuf, vbuf

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[2]
        if self.kbuf is None:
            rows, heads, _, dim = key_states.shape
            capacity = max(n, self.capacity_hint)
            self.kbuf = key_states.new_zeros((rows, heads, capacity, dim))
            self.vbuf = value_states.new_zeros((rows, heads, capacity, value_states.shape[3]))
        self.reserve(self.length + n)
        assert self.kbuf is not None and self.vbuf is not None
        self.kbuf[:, :, self.length : self.length + n] = key_states
        self.vbuf[:, :, self.length : self.length + n] = value_states
        self.length += n
        self._view()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.kbuf is not None and self.vbuf is not None:
            self.kbuf, self.vbuf = self.kbuf[indices], self.vbuf[indices]
            self._view()

    def drop_leading(self, columns: int) -> None:
        """Forget the first `columns` columns (padding no remaining row needs)."""
        if columns and self.kbuf is not None and self.vbuf is not None:
            self.kbuf, self.vbuf = self.kbuf[:, :, columns:], self.vbuf[:, :, columns:]
            self.length -= columns
            self._view()


def slot_cache(model: torch.nn.Module) -> DynamicCache | None:
    """A cache of SlotLayers for `model`, or None when some layer is not a plain full-attention
    layer (sliding windows, linear attention): those models decode batch by batch instead."""
    cache = DynamicCache(config=model.config)
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [SlotLayer() for _ in cache.layers]
    return cache


def reserve(cache: DynamicCache, columns: int) -> None:
    for layer in cache.layers:
        if isinstance(layer, SlotLayer):
            if layer.kbuf is None:
                layer.capacity_hint = columns
            else:
                layer.reserve(columns)


def from_prefix(prefix: DynamicCache, columns: int, rows: int, capacity: int) -> DynamicCache:
    """A cache of `rows` rows, each starting with the first `columns` columns of the one-row cache
    `prefix` (a prompt prefix computed once, shared by all), with room for `capacity` columns."""
    cache = DynamicCache(config=None)
    cache.layers = []
    for source in prefix.layers:
        assert isinstance(source, SlotLayer) and source.kbuf is not None and source.vbuf is not None
        layer = SlotLayer()
        _, heads, _, kdim = source.kbuf.shape
        layer.kbuf = source.kbuf.new_zeros((rows, heads, max(capacity, columns), kdim))
        layer.vbuf = source.vbuf.new_zeros((rows, heads, max(capacity, columns), source.vbuf.shape[3]))
        layer.kbuf[:, :, :columns] = source.kbuf[:, :, :columns]
        layer.vbuf[:, :, :columns] = source.vbuf[:, :, :columns]
        layer.length = columns
        layer.device, layer.is_initialized = source.device, True
        layer._view()
        cache.layers.append(layer)
    return cache


def drop_leading(cache: DynamicCache, columns: int) -> None:
    for layer in cache.layers:
        assert isinstance(layer, SlotLayer)
        layer.drop_leading(columns)


def merge(caches: Sequence[DynamicCache], capacity: int) -> DynamicCache:
    """One cache holding the rows of `caches` in order, right-aligned on a common time axis of the
    longest one's length, with room for `capacity` columns. Padding columns are zeros (masked)."""
    length = max(c.layers[0].get_seq_length() for c in caches)
    merged = DynamicCache(config=None)
    merged.layers = []
    for parts in zip(*(c.layers for c in caches)):
        layer = SlotLayer()
        first = parts[0]
        assert isinstance(first, SlotLayer) and first.kbuf is not None and first.vbuf is not None
        rows = sum(p.kbuf.shape[0] for p in parts)  # type: ignore[union-attr]
        heads, kdim, vdim = first.kbuf.shape[1], first.kbuf.shape[3], first.vbuf.shape[3]
        layer.kbuf = first.kbuf.new_zeros((rows, heads, max(capacity, length), kdim))
        layer.vbuf = first.vbuf.new_zeros((rows, heads, max(capacity, length), vdim))
        row = 0
        for part in parts:
            assert isinstance(part, SlotLayer) and part.kbuf is not None and part.vbuf is not None
            n, used = part.kbuf.shape[0], part.length
            layer.kbuf[row : row + n, :, length - used : length] = part.kbuf[:, :, :used]
            layer.vbuf[row : row + n, :, length - used : length] = part.vbuf[:, :, :used]
            row += n
        layer.length = length
        layer.device, layer.is_initialized = first.device, True
        layer._view()
        merged.layers.append(layer)
    return merged


def prepend(cache: DynamicCache, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], start: int) -> None:
    """Put columns [start:] of a shared prefix (per layer [1, heads, P, dim]) in front of every
    row's own columns: the rows stop sharing that part of the prefix and carry it themselves."""
    for layer, k, v in zip(cache.layers, keys, values):
        assert isinstance(layer, SlotLayer) and layer.kbuf is not None and layer.vbuf is not None
        extra = k.shape[2] - start
        rows, heads, capacity, dim = layer.kbuf.shape
        kbuf = layer.kbuf.new_zeros((rows, heads, capacity + extra, dim))
        vbuf = layer.vbuf.new_zeros((rows, heads, capacity + extra, layer.vbuf.shape[3]))
        kbuf[:, :, :extra] = k[:, :, start:]
        vbuf[:, :, :extra] = v[:, :, start:]
        kbuf[:, :, extra : extra + layer.length] = layer.kbuf[:, :, : layer.length]
        vbuf[:, :, extra : extra + layer.length] = layer.vbuf[:, :, : layer.length]
        layer.kbuf, layer.vbuf = kbuf, vbuf
        layer.length += extra
        layer._view()


def move_rows(cache: DynamicCache, holes: Sequence[int], movers: Sequence[int], rows: int) -> None:
    """Copy rows `movers` into rows `holes` (pairwise), then keep the first `rows` rows (a view:
    nothing else moves)."""
    for layer in cache.layers:
        assert isinstance(layer, SlotLayer) and layer.kbuf is not None and layer.vbuf is not None
        if holes:
            source = torch.tensor(movers, dtype=torch.long, device=layer.kbuf.device)
            target = torch.tensor(holes, dtype=torch.long, device=layer.kbuf.device)
            layer.kbuf[target] = layer.kbuf[source]
            layer.vbuf[target] = layer.vbuf[source]
        layer.kbuf, layer.vbuf = layer.kbuf[:rows], layer.vbuf[:rows]
        layer._view()
