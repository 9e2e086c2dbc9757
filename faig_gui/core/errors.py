"""The one exception type for errors a user can cause."""


class FaigError(Exception):
    """A problem with the user's input (file, architecture, pair, image, value).

    The message says what was wrong and what to do; the CLI prints it on one line and exits 2,
    the window shows it in a dialog and keeps running.
    """
