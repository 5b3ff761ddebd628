"""What can go wrong with data: errors that stop and warnings that repair."""


class CorpusError(ValueError):
    """The corpus cannot be used; the message says why and what to do."""


class DataWarning(UserWarning):
    """Something about the data was repaired or skipped (invalid UTF-8, an unreadable file)."""
