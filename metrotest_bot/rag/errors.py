"""Errors the KB code raises for admins and the CLI to show as they are."""


class KBError(Exception):
    """A KB file cannot be used. `message` is Russian and meant for the admin."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
