"""What a run that had to stop tells the user to resume from: the newest checkpoint it wrote
(solo's ``Checkpointer``), else the one it resumed from itself.
"""

from typing import Optional

from lightning.pytorch import Trainer
from solo.utils.checkpointer import Checkpointer


def last_checkpoint(trainer: Trainer) -> Optional[str]:
    """The newest checkpoint of ``trainer``'s run, ``None`` if there is none yet."""
    checkpointer = next((c for c in trainer.callbacks if isinstance(c, Checkpointer)), None)
    last = getattr(checkpointer, "last_ckpt", None)
    return str(last) if last else trainer.ckpt_path


def resume_hint(trainer: Trainer) -> str:
    """``resume with resume_from_checkpoint=<last>``, or that no checkpoint was written yet."""
    last = last_checkpoint(trainer)
    return f"resume with resume_from_checkpoint={last}" if last else "no checkpoint was written yet"
