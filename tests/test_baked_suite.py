"""The default bake's own fast test suite passes in the freshly baked project, in two modules
so `make test`'s workers run the halves side by side: this one, and test_baked_families.py
(the model-family tests)."""

from pathlib import Path

import pytest
from bakery import assert_baked_tests_pass, bake

pytestmark = pytest.mark.e2e

FAMILY_TESTS = ("tests/test_model_matrix.py", "tests/test_gguf_export.py", "tests/test_families.py")
"""Every model family through every stage and export: test_baked_families.py runs them."""


def test_baked_project_tests_pass(tmp_path: Path, cc_config: str) -> None:
    ignored = [f"--ignore={path}" for path in FAMILY_TESTS]
    assert_baked_tests_pass(bake(tmp_path, cc_config), "-m", "not slow", *ignored)
