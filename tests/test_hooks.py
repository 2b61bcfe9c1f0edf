"""Tests of the cookiecutter hooks: the pre-gen validators and real bakes of the template."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from bakery import (
    CONTEXT,
    DEFAULT_MODULE,
    DEFAULT_SLUG,
    ROOT,
    assert_no_curlies,
    assert_repo_initialised,
    bake,
    git,
)
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import is_copy_only_path

TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
HOOKS = ROOT / "hooks"
TOP_LEVEL_FILES = (
    "dvc.yaml",
    "params.yaml",
    "Makefile",
    "pyproject.toml",
    "requirements.txt",
    "README.md",
    "LICENSE",
)


def load_hook(name: str) -> ModuleType:
    """Import ``hooks/<name>.py`` (unrendered) as a module."""
    spec = importlib.util.spec_from_file_location(f"hook_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")


# --------------------------------------------------------------------------- validators


@pytest.mark.parametrize("slug", ["support-triage-finetune", "ab", "a1", "llm-2-demo"])
def test_validate_slug_accepts(slug: str) -> None:
    assert pre_gen.validate_slug(slug) is None


@pytest.mark.parametrize(
    "slug", ["Bad Slug!", "", "a", "-abc", "abc-", "1abc", "ab_c", "ABC", "a b", "abc."]
)
def test_validate_slug_rejects(slug: str) -> None:
    error = pre_gen.validate_slug(slug)
    assert error is not None
    assert f"project_slug '{slug}'" in error


@pytest.mark.parametrize("name", ["support_triage_finetune", "triage2", "my_llm", "_private"])
def test_validate_module_name_accepts(name: str) -> None:
    assert pre_gen.validate_module_name(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "identifier"),
        ("1abc", "identifier"),
        ("my-module", "identifier"),
        ("Bad Slug!", "identifier"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("json", "standard library"),
        ("os", "standard library"),
        ("dvc", "dependency"),
        ("torch", "dependency"),
        ("transformers", "dependency"),
        ("peft", "dependency"),
        ("trl", "dependency"),
        ("datasets", "dependency"),
        ("pandera", "dependency"),
        ("pydantic", "dependency"),
        ("tests", "dependency"),
        ("src", "dependency"),
    ],
)
def test_validate_module_name_rejects(name: str, why: str) -> None:
    error = pre_gen.validate_module_name(name)
    assert error is not None
    assert f"module_name '{name}'" in error
    assert why in error


@pytest.mark.parametrize(
    "model",
    [
        "embedded:smollm2-135m-instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "./models/my-model",
        "/abs/path/to/model",
    ],
)
def test_validate_base_model_accepts(model: str) -> None:
    assert pre_gen.validate_base_model(model) is None


@pytest.mark.parametrize("model", ["", "   ", "my model", "org/model\t", "a\nb"])
def test_validate_base_model_rejects(model: str) -> None:
    error = pre_gen.validate_base_model(model)
    assert error is not None
    assert "base_model" in error


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("none", ""),
        ("local", "../storage"),
        ("local", "/mnt/share/dvc"),
        ("s3", "s3://bucket/project"),
        ("gcs", "gs://bucket/project"),
        ("azure", "azure://container/project"),
    ],
)
def test_validate_dvc_remote_accepts(kind: str, url: str) -> None:
    assert pre_gen.validate_dvc_remote(kind, url) is None


@pytest.mark.parametrize(
    ("kind", "url", "why"),
    [
        ("s3", "", "needs a dvc_remote_url"),
        ("s3", "gs://bucket/x", "must start with s3://"),
        ("gcs", "s3://bucket/x", "must start with gs://"),
        ("local", "s3://bucket/x", "a local remote is a directory path"),
    ],
)
def test_validate_dvc_remote_rejects(kind: str, url: str, why: str) -> None:
    error = pre_gen.validate_dvc_remote(kind, url)
    assert error is not None and why in error


def test_the_default_remote_url_follows_the_kind() -> None:
    """cookiecutter.json renders dvc_remote_url from dvc_remote: each default is valid."""
    from cookiecutter.environment import StrictEnvironment

    template = StrictEnvironment().from_string(CONTEXT["dvc_remote_url"])
    for kind in CONTEXT["dvc_remote"]:
        url = template.render(cookiecutter={"dvc_remote": kind, "project_slug": "demo"})
        assert pre_gen.validate_dvc_remote(kind, url) is None, (kind, url)
        assert (url == "") == (kind == "none")


def test_pre_gen_main_reports_every_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert pre_gen.main("Bad Slug!", "Bad Slug!", "") == 1
    err_lines = capsys.readouterr().err.splitlines()
    assert len(err_lines) == 3
    assert all(line.startswith("ERROR: ") for line in err_lines)
    assert err_lines[0].startswith("ERROR: project_slug 'Bad Slug!' ")
    assert pre_gen.main(DEFAULT_SLUG, DEFAULT_MODULE, "embedded:smollm2-135m-instruct") == 0


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_hooks_are_valid_python_unrendered(hook: str) -> None:
    source = (HOOKS / f"{hook}.py").read_text(encoding="utf-8")
    compile(source, hook, "exec")


@pytest.mark.parametrize("license_name", CONTEXT["license"])
def test_license_text_names_holder_and_year(license_name: str) -> None:
    text = post_gen.license_text(license_name, "Ada Lovelace", year=2031)
    assert "Ada Lovelace" in text
    assert "2031" in text


def test_cookiecutter_json_choices() -> None:
    assert CONTEXT["method"] == ["lora", "qlora", "full"]
    assert CONTEXT["task_preset"] == ["support-triage", "custom"]
    assert CONTEXT["license"] == ["MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"]
    assert CONTEXT["dvc_remote"] == ["none", "local", "s3", "gcs", "azure"]
    prompted = set(CONTEXT["__prompts__"])
    asked = {key for key in CONTEXT if not key.startswith("_")}
    assert asked <= prompted


@pytest.mark.parametrize(
    ("path", "copied"),
    [
        ("data/raw/support_tickets.jsonl", True),
        ("data/suites/smoke.jsonl", True),
        ("data/raw/README.md", False),
        ("params.yaml", False),
        ("{{cookiecutter.project_slug}}/data/raw/support_tickets.jsonl", False),
    ],
)
def test_copy_without_render_patterns(path: str, copied: bool) -> None:
    # cookiecutter matches these fnmatch patterns against paths relative to the template
    # directory itself, i.e. without the "{{cookiecutter.project_slug}}/" prefix.
    assert is_copy_only_path(path, {"cookiecutter": CONTEXT}) is copied


# --------------------------------------------------------------------------- bakes


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory, cc_config: str) -> Path:
    """The template baked once with all defaults."""
    return bake(tmp_path_factory.mktemp("default"), cc_config)


def test_default_bake_layout(default_project: Path) -> None:
    assert default_project.name == DEFAULT_SLUG
    missing = [name for name in TOP_LEVEL_FILES if not (default_project / name).is_file()]
    assert not missing, f"missing top-level files: {missing}"
    for directory in (f"src/{DEFAULT_MODULE}", "data", "data/raw", "data/suites", "docs", "tests"):
        assert (default_project / directory).is_dir(), directory
    # the README's next steps are pages of the bake
    assert (default_project / "docs/decisions.md").is_file()
    assert (default_project / "data/raw/support_tickets.jsonl").is_file()


def test_default_bake_has_no_curlies(default_project: Path) -> None:
    assert_no_curlies(default_project)


def test_default_bake_git_and_dvc(default_project: Path) -> None:
    assert_repo_initialised(default_project)
    assert git(default_project, "branch", "--show-current") == "main"
    subject = git(default_project, "log", "-1", "--format=%s")
    assert subject == "Initial commit from cookiecutter-llm-finetune"


def test_default_bake_license_is_mit(default_project: Path) -> None:
    text = (default_project / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "Your Name" in text


def test_suites_are_copied_byte_identical(default_project: Path) -> None:
    sources = sorted((TEMPLATE / "data" / "suites").glob("*.jsonl"))
    assert sources, "the template ships no data/suites/*.jsonl"
    for src in sources:
        baked = default_project / "data" / "suites" / src.name
        assert baked.read_bytes() == src.read_bytes(), src.name


def test_raw_data_is_copied_byte_identical(default_project: Path) -> None:
    for src in sorted((TEMPLATE / "data" / "raw").glob("*.jsonl")):
        baked = default_project / "data" / "raw" / src.name
        assert baked.read_bytes() == src.read_bytes(), src.name


LICENSE_MARKERS = {
    "MIT": "MIT License",
    "Apache-2.0": "Apache License, Version 2.0",
    "BSD-3-Clause": "BSD 3-Clause License",
    "Proprietary": "All rights reserved",
}


@pytest.mark.parametrize("license_name", CONTEXT["license"])
def test_bake_each_license(tmp_path: Path, cc_config: str, license_name: str) -> None:
    project = bake(tmp_path, cc_config, license=license_name)
    assert_no_curlies(project)
    assert_repo_initialised(project)
    text = (project / "LICENSE").read_text(encoding="utf-8")
    assert LICENSE_MARKERS[license_name] in text
    assert "Your Name" in text


def test_bake_derives_slug_and_module(tmp_path: Path, cc_config: str) -> None:
    project = bake(tmp_path, cc_config, project_name="Ticket Router_Model")
    assert project.name == "ticket-router-model"
    assert (project / "src" / "ticket_router_model").is_dir()


def test_bake_transliterates_non_ascii_project_name(tmp_path: Path, cc_config: str) -> None:
    # The slug is derived with the slugify filter: accented letters become ASCII instead of
    # failing the pre-gen hook's slug check.
    project = bake(tmp_path, cc_config, project_name="Ünïcode Prøject")
    packages = [path.name for path in (project / "src").iterdir() if path.is_dir()]
    assert len(packages) == 1, packages
    slug, module_name = project.name, packages[0]
    assert slug.isascii() and module_name.isascii()
    assert pre_gen.validate_slug(slug) is None
    assert module_name.isidentifier()
    assert pre_gen.validate_module_name(module_name) is None
    assert (slug, module_name) == ("unicode-project", "unicode_project")
    assert_no_curlies(project)
    assert_repo_initialised(project)


def test_bake_escapes_quotes_in_answers(
    tmp_path: Path, cc_config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a git identity, the hook commits as the author: the answer must survive quoting.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    author = 'Dana O\'Brien "DB" \\ """ x\'\'\' y'
    project = bake(tmp_path / "out", cc_config, author_name=author, author_email="d@x.test")
    assert author.strip() in (project / "LICENSE").read_text(encoding="utf-8")
    assert git(project, "log", "-1", "--format=%ae") == "d@x.test"
    assert_repo_initialised(project)


def test_bad_slug_fails_and_leaves_nothing(
    tmp_path: Path, cc_config: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, cc_config, project_slug="Bad Slug!")
    assert list(tmp_path.iterdir()) == []
    assert "ERROR: project_slug 'Bad Slug!'" in capfd.readouterr().err


def test_reserved_module_name_fails(
    tmp_path: Path, cc_config: str, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, cc_config, module_name="torch")
    assert list(tmp_path.iterdir()) == []
    assert "ERROR: module_name 'torch'" in capfd.readouterr().err


def test_dvc_is_available_to_hooks() -> None:
    # Hooks run with this interpreter (or PATH); without DVC the bakes above skip `dvc init`.
    assert post_gen.find_dvc() is not None
