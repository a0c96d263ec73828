"""Errors of CSV imports: a whole-file problem, and one bad value in one row."""


class CsvImportError(Exception):
    """A mapping, file or header that makes the import impossible.

    Raised before anything is written, or inside the import's transaction,
    which then rolls back, so nothing of the run stays written. The message
    names the file and what to do; the import_csv command turns it into a
    CommandError.
    """


class MappingError(CsvImportError):
    """A mapping file that is not valid TOML or does not describe an import."""


class CellError(ValueError):
    """A value that cannot be converted; the row that contains it is rejected."""

    def __init__(self, column: str, value: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.value = value
        self.reason = reason
