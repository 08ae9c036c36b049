"""The one error type of the data loaders."""


class DataFormatError(ValueError):
    """A data file is missing, truncated or not in the expected format; the message names the file."""
