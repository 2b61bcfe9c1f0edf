"""Document blocks and their two renderings: Markdown for the repository, standalone HTML."""

import base64
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.document import (
    Bullets,
    Code,
    FrontMatter,
    Heading,
    Image,
    Item,
    Para,
    Table,
    inline_html,
    to_html,
    to_markdown,
    write_markdown,
)

PNG = b"\x89PNG fake"


def test_headings_paragraphs_and_blank_lines_between_blocks(tmp_path: Path) -> None:
    blocks = [Heading("Report", 1), Para("First."), Heading("Part"), Para("Second.")]
    assert to_markdown(blocks, tmp_path) == "# Report\n\nFirst.\n\n## Part\n\nSecond.\n"
    page = to_html(blocks, "A <title>")
    assert "<h1>Report</h1>" in page and "<h2>Part</h2>" in page and "<p>Second.</p>" in page
    assert page.startswith("<!doctype html>") and "<title>A &lt;title&gt;</title>" in page


def test_table_cells_are_formatted_and_pipes_escaped(tmp_path: Path) -> None:
    table = Table(["name", "score | share"], [["a|b", 0.5], ["c", None], ["d", True]])
    assert to_markdown([table], tmp_path).splitlines() == [
        "| name | score \\| share |",
        "|---|---|",
        "| a\\|b | 0.500 |",
        "| c | – |",
        "| d | yes |",
    ]
    page = to_html([table], "t")
    assert "<th>score | share</th>" in page and "<td>a|b</td><td>0.500</td>" in page
    assert "\\|" not in page


def test_a_newline_in_a_cell_stays_in_its_row(tmp_path: Path) -> None:
    lines = to_markdown([Table(["text"], [["one\ntwo"]])], tmp_path).splitlines()
    assert lines[2] == "| one<br>two |"


def test_bullets_nest(tmp_path: Path) -> None:
    bullets = Bullets(["plain", Item("parent", ["child", Item("inner", ["leaf"])])])
    assert to_markdown([bullets], tmp_path).splitlines() == [
        "- plain",
        "- parent",
        "  - child",
        "  - inner",
        "    - leaf",
    ]
    page = to_html([bullets], "t")
    assert (
        "<ul><li>plain</li><li>parent<ul><li>child</li>"
        "<li>inner<ul><li>leaf</li></ul></li></ul></li></ul>"
    ) in page


def test_images_are_relative_in_markdown_and_embedded_in_html(tmp_path: Path) -> None:
    image = tmp_path / "reports" / "figures" / "plot.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(PNG)
    blocks = [Image(image, "a plot")]
    assert to_markdown(blocks, tmp_path / "reports") == "![a plot](figures/plot.png)\n"
    assert "![a plot](../reports/figures/plot.png)" in to_markdown(blocks, tmp_path / "models")
    page = to_html(blocks, "t")
    assert f'<img alt="a plot" src="data:image/png;base64,{base64.b64encode(PNG).decode()}">' in (
        page
    )
    assert "plot.png" not in page  # nothing for the page to fetch


def test_front_matter_is_yaml_first_and_left_out_of_html(tmp_path: Path) -> None:
    front = FrontMatter({"base_model": "org/model", "tags": ["a", "b"]})
    text = to_markdown([front, Heading("Card", 1)], tmp_path)
    assert text.startswith("---\nbase_model: org/model\ntags:\n- a\n- b\n---\n\n# Card\n")
    assert yaml.safe_load(text.split("---")[1]) == front.data
    assert "base_model" not in to_html([front, Heading("Card", 1)], "t")
    with pytest.raises(ValueError, match="first block"):
        to_markdown([Heading("Card", 1), front], tmp_path)


def test_code_blocks_are_fenced_and_escaped(tmp_path: Path) -> None:
    assert to_markdown([Code("a: 1\n", "yaml")], tmp_path) == "```yaml\na: 1\n```\n"
    assert to_markdown([Code("x = '```'")], tmp_path) == "````\nx = '```'\n````\n"
    assert "<pre><code>a &lt; b</code></pre>" in to_html([Code("a < b")], "t")


def test_inline_code_and_bold_become_html_and_the_rest_is_escaped() -> None:
    assert inline_html("**bold** and `x < y`") == "<strong>bold</strong> and <code>x &lt; y</code>"
    assert inline_html("**kept `a**b`**") == "<strong>kept <code>a**b</code></strong>"
    assert inline_html("a ` b ** c") == "a ` b ** c"  # unpaired marks stay text
    assert inline_html("<script>") == "&lt;script&gt;"


def test_write_markdown_creates_the_folder_and_links_from_the_file(tmp_path: Path) -> None:
    image = tmp_path / "reports" / "figures" / "plot.png"
    path = tmp_path / "reports" / "sub" / "doc.md"
    write_markdown([Heading("Doc", 1), Image(image, "plot")], path)
    assert path.read_text() == "# Doc\n\n![plot](../figures/plot.png)\n"
