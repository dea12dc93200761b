"""The one exception type that reaches the user as a single line and exit code 2."""


class UserError(Exception):
    """Bad input or an unusable environment: the CLI prints the message alone, no traceback.

    Raise it where the cause is the user's to fix (a config key, a path, storage that cannot be
    reached); let every other exception propagate, since a traceback is the right report of a bug.
    """
