"""The default bake's model-family tests pass in the freshly baked project: a tiny model of
every family people fine-tune through every stage and every export (the other half of the
baked suite is test_baked_suite.py)."""

from pathlib import Path

import pytest
from bakery import assert_baked_tests_pass, bake
from test_baked_suite import FAMILY_TESTS

pytestmark = pytest.mark.e2e


def test_baked_model_family_tests_pass(tmp_path: Path, cc_config: str) -> None:
    assert_baked_tests_pass(bake(tmp_path, cc_config), "-m", "not slow", *FAMILY_TESTS)
