"""Peak tensor memory of a block of code on any device, for CPU runs where no allocator keeps stats.

torch's own ``MemTracker`` (``torch.distributed._tools``) fails on models with frozen parameters
(an EMA target encoder), so this counts storages directly: the given tensors, plus every storage an
op creates inside the context, until the storage is freed.
"""

import weakref
from typing import Dict, Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class PeakMemory(TorchDispatchMode):
    def __init__(self, resident: Iterable[torch.Tensor] = ()):
        """Tracks ``resident`` tensors (parameters, gradients, optimizer state, inputs) from the
        start; ``peak`` is then the most bytes alive at once inside the context."""
        super().__init__()
        self._live: Dict[int, int] = {}
        self.current = self.peak = 0
        for tensor in resident:
            self._add(tensor.untyped_storage())

    def _add(self, storage: torch.UntypedStorage) -> None:
        # Storages keep their Python object while alive, so id() is stable and the finalizer
        # runs exactly when the memory is released.
        key = id(storage)
        if key in self._live or storage.nbytes() == 0:
            return
        self._live[key] = storage.nbytes()
        self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._add(leaf.untyped_storage())
        return out
