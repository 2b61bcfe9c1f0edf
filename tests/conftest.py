"""Fixtures shared by the template tests."""

import pytest


@pytest.fixture(scope="session")
def cc_config(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cookiecutter user config that keeps replay files out of the real home directory."""
    base = tmp_path_factory.mktemp("cc-config")
    config = base / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: '{base / 'cookiecutters'}'\nreplay_dir: '{base / 'replay'}'\n",
        encoding="utf-8",
    )
    return str(config)
