"""Lightning checkpoint IO that writes each checkpoint whole or not at all.

Lightning serialises in memory but then writes in place, so a run killed mid-write leaves a
truncated ``.ckpt`` that auto-resume would pick up; here the bytes go to a side file first and
``os.replace`` (atomic on POSIX and Windows) puts it in place.
"""

import os
from pathlib import Path
from typing import Any, Dict, Optional

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(
        self,
        checkpoint: Dict[str, Any],
        path: os.PathLike,
        storage_options: Optional[Any] = None,
    ) -> None:
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        super().save_checkpoint(checkpoint, partial, storage_options)
        os.replace(partial, path)
