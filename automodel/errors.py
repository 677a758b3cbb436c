"""User-facing errors: one clear sentence saying what is wrong and what to do."""


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
