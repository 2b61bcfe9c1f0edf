"""Entry-point wrapper: errors meant for people end the stage with one clear line, not a
traceback; anything unexpected still raises with its full context."""

import logging
import sys
from collections.abc import Callable

from .params import ParamsError


class StageError(RuntimeError):
    """A stage found a problem the user must fix; the message says what and where."""


def run_stage(name: str, main: Callable[[], None]) -> None:
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s")
    try:
        main()
    except (ParamsError, StageError, FileNotFoundError, ValueError) as error:
        sys.exit(f"{name} failed: {error}")
