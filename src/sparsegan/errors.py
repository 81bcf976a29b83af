"""The one exception type for user mistakes.

The CLI turns a :class:`UserError` into one line on stderr and a non-zero exit, never a traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: bad flag value, missing file, unknown name."""

    exit_code = 2


class DivergenceError(Exception):
    """Training produced non-finite losses or weights."""

    exit_code = 3
