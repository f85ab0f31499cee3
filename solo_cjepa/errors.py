"""What the launchers tell the user: :class:`ConfigError`, reported as one line before training
starts (its message names the offending key and the values it accepts), and :func:`note`.
"""

import sys

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
