"""One integer seed from a run's seed and the counters a random draw depends on (rank, epoch,
batch), so masks, data order and augmentations are pure functions of them and a resumed run draws
exactly what the uninterrupted one would have.
"""


def mix_seed(seed: int, *counters: int) -> int:
    """A seed in ``[0, 2**32)``, valid for ``random``, NumPy and torch generators alike."""
    for counter in counters:
        seed = (seed * 1_000_003 + counter) % 2**32
    return seed
