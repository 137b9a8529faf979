"""Errors that speak to the user.

Every mistake in input (a config, a data file, a model name, a flag) raises a subclass of
:class:`FtkitError`. The command line prints its message and exits with status 2; a
notebook shows the message without a wall of traceback. Anything else is a bug in ftkit.
"""


class FtkitError(Exception):
    """A problem with the user's input or environment, explained in the message."""

    exit_code = 2


class ConfigError(FtkitError):
    """A run config that cannot be read or does not validate."""


class ModelNotFoundError(FtkitError):
    """A model name or path that resolves to nothing usable on this machine."""
