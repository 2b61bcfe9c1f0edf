"""The versions a run resolved: the libraries that decide results, Python and the platform
(`resolved_versions`, for reports; the eval cache key uses `package_versions`)."""

import importlib.metadata
import platform
from collections.abc import Iterable

PACKAGES = (
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "dvc",
    "dvclive",
    "bitsandbytes",
)


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """{distribution: installed version}, None for one that is not installed."""
    versions: dict[str, str | None] = {}
    for package in packages:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def resolved_versions() -> dict[str, str]:
    """{name: version} of the installed PACKAGES (an optional one such as bitsandbytes only
    where installed), plus `python` and `platform`."""
    installed = {name: version for name, version in package_versions().items() if version}
    return {**installed, "python": platform.python_version(), "platform": platform.platform()}
