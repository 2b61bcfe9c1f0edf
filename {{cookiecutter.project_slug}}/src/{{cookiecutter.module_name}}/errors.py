"""The one error type for problems the user must fix (bad data, a bad param, a missing input,
hardware that cannot run the chosen method). `cli.run_stage` turns it into one line naming
what was wrong and what to do; any other exception is a bug and keeps its traceback."""


class StageError(Exception):
    """A problem the user must fix; the message says what, where, and what to do."""
