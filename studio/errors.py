"""User-facing errors: one clear message that says what, where and what to do."""


class StudioError(Exception):
    """A problem the user can fix. `str(err)` is shown as-is, never a traceback."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" {self.hint}"
        return text
