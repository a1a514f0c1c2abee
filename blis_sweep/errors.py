"""The one error type users see: a one-line message naming the field and what is allowed."""


class BlisError(Exception):
    """Bad input. The CLI prints `error: <message>` and exits with status 2."""
