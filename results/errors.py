"""Errors that are the user's to fix: printed as one clear line, never as a traceback.

At the bottom of the layers (no torch, no other package of this repo), so suites/ and runners/ raise
the same types and the CLI catches them in one place."""


class UserError(Exception):
    """Bad input: unknown option, invalid value, missing data, corrupt record, unwritable directory."""


class DatasetMissing(UserError):
    """A dataset is not on disk and cannot be downloaded; the message says where to put it."""
