"""The one exception type that reaches the user as a single line and exit code 2."""


class UserError(Exception):
    """Bad input or an unusable environment: the CLI prints the message alone, no traceback.

    Raise it where the cause is the user's to fix (a config key, a path, storage that cannot be
    reached); let every other exception propagate, since a traceback is the right report of a bug.
    """


def one_line(text: str) -> str:
    """`text` as one printable line: characters such as newlines in a user's key or value are
    shown escaped, as Python would write them."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
