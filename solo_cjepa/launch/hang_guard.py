"""Lightning's hang guard for multi-process runs: the process group's timeout, set from
``ddp_timeout_minutes``, so a collective that one process never joins ends the run with one
``error:`` line (and the checkpoint to resume from) instead of hanging until the job's time is up.
"""

import contextlib
import signal
from datetime import timedelta
from typing import Iterator, Union

from lightning.pytorch import Trainer
from lightning.pytorch.strategies import Strategy
from lightning.pytorch.strategies.ddp import DDPStrategy
from omegaconf import DictConfig
from solo.utils.misc import omegaconf_select

from solo_cjepa.errors import RunError
from solo_cjepa.launch.checkpoints.resume_hint import resume_hint

# torch's default for gloo (NCCL's own default is 10): long enough for a slow checkpoint write
# or a first-epoch DALI index on one node while the others wait at a barrier.
DDP_TIMEOUT_MINUTES = 30.0
# How gloo ("Timed out waiting 1800000ms for recv") and NCCL's watchdog ("Watchdog caught
# collective operation timeout") word a collective that ran out of time.
TIMEOUT_WORDS = ("timed out", "timeout")


def ddp_timeout(cfg: DictConfig) -> timedelta:
    """``ddp_timeout_minutes`` (default :data:`DDP_TIMEOUT_MINUTES`) as the process group's."""
    return timedelta(minutes=omegaconf_select(cfg, "ddp_timeout_minutes", DDP_TIMEOUT_MINUTES))


def strategy(cfg: DictConfig) -> Union[str, Strategy]:
    """``cfg.strategy``; ``ddp`` with its timeout and without the unused-parameter search."""
    if cfg.strategy != "ddp":
        return cfg.strategy
    return DDPStrategy(find_unused_parameters=False, timeout=ddp_timeout(cfg))


def _end_started_processes(launcher: object) -> None:
    """Kills and reaps the processes Lightning's script launcher started, and forgets them
    first: its observer thread, polling that same list, would otherwise see their exit status
    and SIGKILL this process too, before it can print its error and exit 1."""
    started = list(getattr(launcher, "procs", None) or ())
    if not started:
        return
    launcher.procs.clear()
    for proc in started:
        proc.send_signal(signal.SIGKILL)  # SIGTERM does not end a process blocked in a collective
        proc.wait()


@contextlib.contextmanager
def stalled_collectives(cfg: DictConfig, trainer: Trainer) -> Iterator[None]:
    """Turns a collective's timeout in a multi-process ``trainer`` into a :class:`RunError`
    naming the setting and the last checkpoint, after ending the processes this one started
    (Lightning 2.1 leaves them running; other nodes' processes time out on their own)."""
    try:
        yield
    except RuntimeError as err:  # torch.distributed.DistBackendError included
        if trainer.world_size == 1 or not any(w in str(err).lower() for w in TIMEOUT_WORDS):
            raise
        _end_started_processes(trainer.strategy.launcher)
        minutes = ddp_timeout(cfg).total_seconds() / 60
        raise RunError(
            f"process {trainer.global_rank} of {trainer.world_size} waited longer than "
            f"ddp_timeout_minutes={minutes:g} in a collective: another process stalled or died "
            f"(its own error, if any, is above); {resume_hint(trainer)}"
        ) from None
