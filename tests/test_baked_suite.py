"""The default bake's own fast test suite passes in the freshly baked project (its own module,
so `make test`'s workers can run it beside the pipeline tests)."""

from pathlib import Path

import pytest
from bakery import assert_baked_tests_pass, bake

pytestmark = pytest.mark.e2e


def test_baked_project_tests_pass(tmp_path: Path, cc_config: str) -> None:
    assert_baked_tests_pass(bake(tmp_path, cc_config))
