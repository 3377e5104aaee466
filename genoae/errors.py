"""Errors that the CLI turns into one line on stderr and exit code 2."""
from __future__ import annotations

import os


class InputError(Exception):
    """Bad input: names the file, the line or record, and what is wrong.

    Parameters
    ----------
    path : str or os.PathLike or None
        The file at fault.
    message : str
        What is wrong and what was expected.
    line : int, optional
        1-based line (text files) or record number.
    """

    def __init__(self, path, message: str, line: int | None = None, what: str = "line"):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        self.what = what
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where = f"{where}:{self.what} {self.line}"
        return f"{where}: {self.message}"


class UsageError(Exception):
    """Bad combination of arguments (exit code 2)."""


class InputWarning(UserWarning):
    """Input that is read but looks wrong in a way the user must hear about (the CLI prints one line)."""


class RankError(Exception):
    """A sharded run lost a rank (it died, hung past the timeout, or could not join): exit code 2.  ``quiet``: the
    rank that failed has said why, so this one stops without a second line."""

    def __init__(self, message: str, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet
