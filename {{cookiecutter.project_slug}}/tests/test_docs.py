"""The README and docs/ against the project they describe: the package tree names every module
and only modules that exist, every relative link resolves, every `make` target exists, the
README stays short, and no page points at material the project does not ship."""

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]
PACKAGE = "{{ cookiecutter.module_name }}"
PACKAGE_DIR = PROJECT / "src" / PACKAGE
README = PROJECT / "README.md"
DOCS = sorted((PROJECT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
LAYOUT = PROJECT / "docs" / "layout.md"
MAX_README_LINES = 200

FENCE_RE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
TREE_ENTRY_RE = re.compile(r"^\s*([\w/]+\.py)\s", re.M)
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE_RE = re.compile(r"`([^`\n]+)`")
MAKE_RE = re.compile(r"(?<![\w.-])make ([a-z][\w-]*)")
TARGET_RE = re.compile(r"^([a-zA-Z][\w-]*)\s*:(?!=)", re.M)
# Text that names something the project does not ship: the template repository's own
# measurements file, and its internal names for the source notes behind a default.
UNSHIPPED = ("benchmarks.md", "seed 00")


def package_tree(text: str) -> set[str]:
    """Module paths (relative to the package) listed in the fenced block(s) of `text` that
    hold the package tree: a line starting with `<path>.py` followed by its job."""
    return {
        entry for block in FENCE_RE.findall(text) for entry in TREE_ENTRY_RE.findall(block + "\n")
    }


def package_modules(package_dir: Path) -> set[str]:
    """Every module of the package, relative to it, except `__init__.py` files."""
    return {
        path.relative_to(package_dir).as_posix()
        for path in package_dir.rglob("*.py")
        if path.name != "__init__.py"
    }


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (outside code blocks)."""
    text = FENCE_RE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def broken_links(page: Path) -> list[str]:
    """Relative links of `page` whose file, or heading anchor, does not exist."""
    text = FENCE_RE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK_RE.findall(text):
        if re.match(r"^[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    return broken


def make_mentions(text: str) -> set[str]:
    """The targets of every `make <target>` written as code (a code block or inline code)."""
    code = "\n".join([*FENCE_RE.findall(text), *INLINE_CODE_RE.findall(FENCE_RE.sub("", text))])
    return set(MAKE_RE.findall(code))


def makefile_targets(makefile: Path) -> set[str]:
    return set(TARGET_RE.findall(makefile.read_text(encoding="utf-8")))


def test_docs_pages_exist() -> None:
    names = {page.name for page in DOCS}
    assert {
        "data.md",
        "training.md",
        "evaluation.md",
        "shipping.md",
        "teams-and-scale.md",
        "decisions.md",
        "layout.md",
    } <= names


def test_layout_tree_lists_exactly_the_packages_modules() -> None:
    listed = package_tree(LAYOUT.read_text(encoding="utf-8"))
    actual = package_modules(PACKAGE_DIR)
    assert actual, f"no modules found under {PACKAGE_DIR}"
    missing = sorted(actual - listed)
    stale = sorted(listed - actual)
    assert not missing, f"modules missing from the tree in docs/layout.md: {missing}"
    assert not stale, f"docs/layout.md lists modules that do not exist: {stale}"


def test_layout_tree_parsing_sees_a_stale_entry() -> None:
    # the tree parser must see entries: a module renamed in the tree shows up as stale
    text = "```\nstages/base.py      the base stage\nstages/gone.py   removed\n```\n"
    assert package_tree(text) == {"stages/base.py", "stages/gone.py"}
    assert "stages/gone.py" not in package_modules(PACKAGE_DIR)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(PROJECT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    assert not broken_links(page), f"{page.name}: broken links {broken_links(page)}"


def test_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading\n", encoding="utf-8")
    page.write_text(
        "[ok](there.md#a-heading) [web](https://example.com) [gone](missing.md) "
        "[bad anchor](there.md#nowhere)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == ["missing.md (no such file)", "there.md#nowhere (no such heading)"]


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines (limit {MAX_README_LINES})"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(PROJECT).as_posix())
def test_no_reference_to_unshipped_material(page: Path) -> None:
    text = page.read_text(encoding="utf-8").lower()
    found = [phrase for phrase in UNSHIPPED if phrase in text]
    assert not found, f"{page.name} mentions {found}, which the project does not ship"


def test_make_targets_mentioned_exist() -> None:
    targets = makefile_targets(PROJECT / "Makefile")
    assert {"setup", "repro", "test"} <= targets
    mentioned = {
        target: page.name
        for page in PAGES
        for target in make_mentions(page.read_text(encoding="utf-8"))
    }
    assert mentioned, "no `make <target>` found in the README or docs"
    unknown = {target: page for target, page in mentioned.items() if target not in targets}
    assert not unknown, f"make targets not in the Makefile: {unknown}"


def test_make_mentions_parsing() -> None:
    text = "Run `make setup TORCH_SPEC=x`, then\n```bash\nmake no-such-target\n```\nto make it."
    assert make_mentions(text) == {"setup", "no-such-target"}
