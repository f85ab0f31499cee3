"""Host synchronisations of a block of code: on CUDA, torch's own sync debug mode; on any device,
a counter of the Python-visible tensor-to-host conversions and blocking ops (``HostSyncCounter``),
which is what finds them on a CPU, where nothing stalls.
"""

import contextlib
import warnings
from collections import Counter
from typing import Iterator

import torch

# Tensor methods that hand a value to Python or whose output size depends on the data.
TENSOR_METHODS = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero")
TORCH_FUNCTIONS = ("nonzero", "unique", "masked_select")
# torch.linalg's decompositions and solvers: they check LAPACK / cuSOLVER errors on the host (the
# *_ex variants, which do not, are left out).
LINALG_FUNCTIONS = (
    "svd", "svdvals", "eig", "eigvals", "eigh", "eigvalsh", "qr", "cholesky", "lu", "lu_factor",
    "ldl_factor", "inv", "solve", "lstsq", "matrix_rank", "pinv",
)  # fmt: skip


class HostSyncCounter:
    """Counts, by name, the calls of the conversions and ops above while the context is open."""

    def __init__(self):
        self.calls: Counter = Counter()
        self._patched = []

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def _wrap(self, owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls[label] += 1
            return original(*args, **kwargs)

        self._patched.append((owner, name, original))
        setattr(owner, name, counted)

    def __enter__(self) -> "HostSyncCounter":
        for name in TENSOR_METHODS:
            self._wrap(torch.Tensor, name, f"Tensor.{name}")
        for name in TORCH_FUNCTIONS:
            self._wrap(torch, name, f"torch.{name}")
        for name in LINALG_FUNCTIONS:
            self._wrap(torch.linalg, name, f"torch.linalg.{name}")
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()


@contextlib.contextmanager
def cuda_sync_warnings() -> Iterator[list]:
    """Records a warning for every synchronising CUDA call (``torch.cuda.set_sync_debug_mode``);
    the list's length is the count."""
    before = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            syncs: list = []
            yield syncs
        finally:
            torch.cuda.set_sync_debug_mode(before)
            syncs.extend(w for w in caught if "synchroniz" in str(w.message))
