"""Errors a user can cause and fix; the CLI prints them as one line instead of a traceback."""


class UserError(Exception):
    """A mistake in the user's input (file, name, option, checkpoint) with a message saying how to fix it.

    Bugs in this package raise ordinary exceptions and keep their tracebacks.
    """


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or whose tensors do not fit the model it describes."""


class EncoderOnlyError(CheckpointError):
    """An encoder-only checkpoint (no decoder weights) opened without the class count its new head needs."""
