"""User-facing errors: one clear message naming what is wrong and how to fix it."""


class UserError(Exception):
    """An error the user can fix (config, data, arguments). The CLI prints it without a traceback."""
