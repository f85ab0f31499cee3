"""What every command tells the user: :class:`ConfigError`, reported as one ``error:`` line and
exit status 2 before any work starts (its message names the offending key or file and what it
accepts), :class:`RunError`, one ``error:`` line and exit status 1 for a run that stopped on the
way, and :func:`note`.
"""

import contextlib
import sys
from typing import Iterator

from lightning.pytorch.utilities.rank_zero import rank_zero_only


class ConfigError(ValueError):
    """A setting or a data path the run cannot use."""

    exit_code = 2  # as argparse exits on a bad command line


class RunError(ConfigError):
    """A run that started and had to stop: the message says why and how to continue."""

    exit_code = 1


def require(ok: bool, message: str) -> None:
    """Raises :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


@rank_zero_only
def note(message: str) -> None:
    """One line on stderr from the first process (hydra's yamls switch Python logging off)."""
    print(f"[solo-cjepa] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turns a :class:`ConfigError` (or :class:`RunError`) into one ``error:`` line on stderr and
    its exit status."""
    try:
        yield
    except ConfigError as err:
        # raised in a DataLoader worker, it comes back with the worker's traceback before it
        message = str(err).strip().splitlines()[-1].split("ConfigError: ", 1)[-1]
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
