"""Template updates: a baked project carries .cruft.json, and `cruft update` brings a later
template change into it without losing the user's edits (the generated docs/teams-and-scale.md).

Each test copies the template into its own git repository, bakes it, and changes it there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bakery import ROOT, assert_repo_initialised, git

TEMPLATE_DIR = "{{cookiecutter.project_slug}}"
TEMPLATE_FILES = ("cookiecutter.json", "hooks", TEMPLATE_DIR)
IDENTITY = ("-c", "user.name=Template Tests", "-c", "user.email=tests@example.com")
CANARY_TARGET = "cruft-canary: ## added to the template after the bake\n\t@echo canary\n"
CANARY_README = "A line the template gained after the bake.\n"
CANARY_PARAMS = "# a comment the template gained after the bake\n"
SEED_LINE = re.compile(r"^seed: .*$", re.MULTILINE)


def commit_all(repo: Path, message: str) -> str:
    """Stage everything in ``repo``, commit it and return the new HEAD."""
    git(repo, "add", "-A")
    git(repo, *IDENTITY, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def copy_template(dest: Path) -> Path:
    """The template's files (not its tests, docs or build outputs) copied into ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", ".ruff_cache", ".pytest_cache")
    dest.mkdir(parents=True)
    for name in TEMPLATE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """The template in a fresh git repository with one commit."""
    repo = copy_template(tmp_path / "template")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "template v1")
    return repo


def run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m args`` in ``cwd`` as a shell would ($PWD set), without analytics."""
    env = {**os.environ, "PWD": str(cwd), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def bake_cli(template: Path, out: Path, cc_config: str) -> subprocess.CompletedProcess[str]:
    """`cookiecutter . --no-input` in the template directory, as `make demo` bakes."""
    return run(
        template, "cookiecutter", ".", "--no-input", "-o", str(out), "--config-file", cc_config
    )


def cruft_state(project: Path) -> dict:
    return json.loads((project / ".cruft.json").read_text(encoding="utf-8"))


def status(project: Path) -> set[str]:
    """`git status --porcelain` lines (index and work-tree columns kept)."""
    out = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True
    ).stdout
    return {line for line in out.splitlines() if line}


def set_seed(params: Path, seed: int) -> None:
    text, count = SEED_LINE.subn(f"seed: {seed}", params.read_text(encoding="utf-8"), count=1)
    assert count == 1, f"{params} has no top-level `seed:` line"
    params.write_text(text, encoding="utf-8")


def test_plain_bake_commits_the_cruft_file_cruft_create_writes(
    template: Path, tmp_path: Path, cc_config: str
) -> None:
    bake_cli(template, tmp_path / "plain", cc_config)
    (project,) = (tmp_path / "plain").iterdir()
    state = cruft_state(project)
    assert state["template"] == str(template.resolve())  # `.` made absolute
    assert state["commit"] == git(template, "rev-parse", "HEAD")
    assert (state["checkout"], state["directory"]) == (None, None)
    answers = state["context"]["cookiecutter"]
    assert answers["project_slug"] == project.name
    assert answers["_template"] == state["template"]
    assert answers["_commit"] == state["commit"]
    assert not {"_output_dir", "_repo_dir", "_checkout"} & set(answers)
    assert_repo_initialised(project)  # one commit, clean: the hook committed .cruft.json
    assert ".cruft.json" in git(project, "ls-files")
    assert "up to date" in run(project, "cruft", "check").stdout

    # `cruft create` writes its own .cruft.json after the hook: the same bytes, so the tree
    # stays clean and both ways of baking give one file.
    run(tmp_path, "cruft", "create", str(template), "--output-dir", str(tmp_path / "cruft"),
        "--no-input", "--config-file", cc_config)  # fmt: skip
    created = tmp_path / "cruft" / project.name
    assert (created / ".cruft.json").read_bytes() == (project / ".cruft.json").read_bytes()
    assert_repo_initialised(created)


def test_bake_from_a_url_records_the_url_and_checkout(
    template: Path, tmp_path: Path, cc_config: str
) -> None:
    # cookiecutter clones a URL (gh:..., https://..., git+file://...) into cookiecutters_dir
    # and renders the clone: .cruft.json names the URL git cloned, so cruft can clone it too.
    url = template.resolve().as_uri()
    out = tmp_path / "out"
    run(tmp_path, "cookiecutter", f"git+{url}", "--checkout", "main", "--no-input", "-o", str(out),
        "--config-file", cc_config)  # fmt: skip
    (project,) = out.iterdir()
    state = cruft_state(project)
    assert (state["template"], state["checkout"]) == (url, "main")
    assert state["commit"] == git(template, "rev-parse", "HEAD")
    assert "up to date" in run(project, "cruft", "check").stdout


def test_update_brings_template_changes_and_keeps_user_edits(
    template: Path, tmp_path: Path, cc_config: str
) -> None:
    bake_cli(template, tmp_path / "out", cc_config)
    (project,) = (tmp_path / "out").iterdir()
    raw_data = {path.name: path.read_bytes() for path in (project / "data/raw").glob("*.jsonl")}
    assert raw_data, "the default bake ships sample data in data/raw"
    set_seed(project / "params.yaml", 7)
    user_commit = commit_all(project, "seed 7")

    # The template moves on: a Makefile target, a README line, a params.yaml comment away
    # from the user's edit, and new sample data (which data/raw/*.jsonl in skip keeps out).
    baked = template / TEMPLATE_DIR
    with (baked / "Makefile").open("a", encoding="utf-8") as makefile:
        makefile.write("\n" + CANARY_TARGET)
    with (baked / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\n" + CANARY_README)
    with (baked / "params.yaml").open("a", encoding="utf-8") as params:
        params.write(CANARY_PARAMS)
    with (baked / "data/raw/support_tickets.jsonl").open("a", encoding="utf-8") as tickets:
        tickets.write('{"prompt": "new template sample", "completion": "{}"}\n')
    new_commit = commit_all(template, "template v2")

    check = run(project, "cruft", "check", check=False)
    assert check.returncode != 0
    assert "out of date" in check.stdout

    update = run(project, "cruft", "update", "--skip-apply-ask")
    assert "has been updated" in update.stdout, update.stdout + update.stderr

    assert CANARY_TARGET in (project / "Makefile").read_text(encoding="utf-8")
    assert CANARY_README in (project / "README.md").read_text(encoding="utf-8")
    params = (project / "params.yaml").read_text(encoding="utf-8")
    assert SEED_LINE.search(params).group() == "seed: 7"
    assert params.endswith(CANARY_PARAMS)
    assert {p.name: p.read_bytes() for p in (project / "data/raw").glob("*.jsonl")} == raw_data
    assert cruft_state(project)["commit"] == new_commit
    assert "up to date" in run(project, "cruft", "check").stdout
    # cruft applies the template's diff to the index (git apply -3) and rewrites .cruft.json;
    # it commits nothing: the user reviews `git diff --cached` and commits.
    assert git(project, "rev-parse", "HEAD") == user_commit
    assert status(project) == {"M  Makefile", "M  README.md", "M  params.yaml", " M .cruft.json"}
    assert not list(project.rglob("*.rej"))


def test_update_conflict_keeps_both_values(template: Path, tmp_path: Path, cc_config: str) -> None:
    # params.yaml is not in skip: when the template changes a line the user changed too,
    # git marks a conflict with both values instead of overwriting either.
    bake_cli(template, tmp_path / "out", cc_config)
    (project,) = (tmp_path / "out").iterdir()
    set_seed(project / "params.yaml", 7)
    commit_all(project, "seed 7")
    set_seed(template / TEMPLATE_DIR / "params.yaml", 1234)
    commit_all(template, "template: new default seed")

    run(project, "cruft", "update", "--skip-apply-ask", check=False)

    params = (project / "params.yaml").read_text(encoding="utf-8")
    ours, theirs = params.index("seed: 7"), params.index("seed: 1234")
    assert params.index("<<<<<<<") < ours < params.index("=======") < theirs
    assert "UU params.yaml" in status(project)


def test_bake_from_a_checkout_with_uncommitted_changes_warns(
    template: Path, tmp_path: Path, cc_config: str
) -> None:
    # The bake renders the working tree, but cruft can only diff from a commit: say which.
    with (template / TEMPLATE_DIR / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\n" + CANARY_README)
    baked = bake_cli(template, tmp_path / "out", cc_config)
    head = git(template, "rev-parse", "HEAD")
    assert f"uncommitted changes: .cruft.json records its last commit {head[:12]}" in baked.stderr
    (project,) = (tmp_path / "out").iterdir()
    assert cruft_state(project)["commit"] == head


def test_bake_from_a_plain_directory_skips_the_cruft_file(tmp_path: Path, cc_config: str) -> None:
    template = copy_template(tmp_path / "template")  # no git repository
    baked = bake_cli(template, tmp_path / "out", cc_config)
    (project,) = (tmp_path / "out").iterdir()
    assert not (project / ".cruft.json").exists()
    assert "cruft link" in baked.stdout
    assert_repo_initialised(project)
