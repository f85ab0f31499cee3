"""The error a launcher reports as one line before training starts: a bad setting or missing data.

Its message names the offending key and the values it accepts.
"""


class ConfigError(ValueError):
    """A setting or a data path the run cannot use."""
