"""Exceptions whose messages tell the user what to do."""


class PairLensError(Exception):
    """Base class: the message is a complete, user-facing sentence with a remedy."""


class InputError(PairLensError, ValueError):
    """Bad text, layer, steps, rule, mode, similarity or data file."""


class ModelError(PairLensError):
    """A model that is unknown, not installed, corrupt or unsupported."""


class PairLensWarning(UserWarning):
    """Something was changed to explain the input (truncation, repaired text, no convergence)."""
