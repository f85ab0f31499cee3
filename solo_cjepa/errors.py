"""What every command tells the user: :class:`ConfigError`, reported as one ``error:`` line and
exit status 2 before any work starts (its message names the offending key or file and what it
accepts), and :func:`note`.
"""

import contextlib
import sys
from typing import Iterator

from lightning.pytorch.utilities.rank_zero import rank_zero_only


class ConfigError(ValueError):
    """A setting or a data path the run cannot use."""


def require(ok: bool, message: str) -> None:
    """Raises :class:`ConfigError` with ``message`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


@rank_zero_only
def note(message: str) -> None:
    """One line on stderr from the first process (hydra's yamls switch Python logging off)."""
    print(f"[solo-cjepa] {message}", file=sys.stderr, flush=True)


CONFIG_ERROR_EXIT = 2  # as argparse exits on a bad command line


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """Turns a :class:`ConfigError` into one ``error:`` line on stderr and exit status 2."""
    try:
        yield
    except ConfigError as err:
        # raised in a DataLoader worker, it comes back with the worker's traceback before it
        message = str(err).strip().splitlines()[-1].split("ConfigError: ", 1)[-1]
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
