"""Entry-point wrapper for the stages: a StageError (something the user must fix) ends the stage
with one clear line; anything else is a bug and raises with its full traceback."""

import logging
import sys
from collections.abc import Callable

from .errors import StageError


def run_stage(name: str, main: Callable[[], None]) -> None:
    logging.basicConfig(level=logging.INFO, format=f"{name}: %(message)s")
    try:
        main()
    except StageError as error:
        sys.exit(f"{name} failed: {error}")
