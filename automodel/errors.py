"""User-facing errors: one clear sentence saying what is wrong and what to do; and the words such sentences share."""

_MB = 1024**2


class AutomodelError(Exception):
    """An error caused by the user's input or configuration, shown to them as one sentence."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputFileError(AutomodelError):
    """The input file is missing, empty or unreadable."""


class QuotaExceededError(AutomodelError):
    """A tier quota would be exceeded."""


class TargetError(AutomodelError):
    """The target column is unknown or unusable."""


class UnsafePathError(AutomodelError):
    """A user id, file name or key tries to escape its folder."""


class ScoringError(AutomodelError):
    """New data cannot be scored with a saved model."""


def plural(n: int, noun: str) -> str:
    """``1 row``, ``3 rows``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def human_size(n_bytes: float) -> str:
    """A byte count as a person reads it: GB, MB or KB."""
    if n_bytes >= 1024**3:
        return f"{n_bytes / 1024**3:,.2f} GB"
    return f"{n_bytes / _MB:,.1f} MB" if n_bytes >= _MB else f"{n_bytes / 1024:,.1f} KB"
