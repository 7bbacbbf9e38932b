"""Errors that are the user's to fix: printed as one clear line, never as a traceback."""


class UserError(Exception):
    """Bad input: unknown option, invalid value, missing data, corrupt record, unwritable directory."""


class DatasetMissing(UserError):
    """A dataset is not on disk and cannot be downloaded; the message says where to put it."""
