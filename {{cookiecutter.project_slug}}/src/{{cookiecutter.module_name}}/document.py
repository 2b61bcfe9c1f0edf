"""A document as a list of blocks (headings, paragraphs, tables, bullet lists, code, images,
raw HTML), rendered to Markdown for the repository or to a standalone HTML page for a browser.

reports/data.md, reports/report.md (and report.html), reports/training_example.html and the
model card models/selected/README.md are all built this way, so tables, escaping and image
paths work the same in each. Text in a block may use two inline Markdown marks, `code` and
**bold**; both renderers understand them.
"""

import base64
import html
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class FrontMatter:
    """YAML metadata (a Hugging Face model card's header); Markdown only, first block only."""

    data: dict[str, Any]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    """Cells are formatted by `cell` (floats to 3 decimals, None as a dash, bools as yes/no)."""

    header: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Item:
    """A bullet with nested bullets under it."""

    text: str
    children: list["str | Item"] = field(default_factory=list)


@dataclass(frozen=True)
class Bullets:
    items: list[str | Item]


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Html:
    """Markup written as it is by both renderers (Markdown passes HTML through): for what the
    other blocks cannot show, such as reports/training_example.html's highlighted tokens."""

    markup: str


Block = FrontMatter | Heading | Para | Table | Bullets | Code | Image | Html


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


# ------------------------------------------------------------------------------ Markdown


def _md_cell(value: Any) -> str:
    """A table cell: `|` would end the cell and a newline the row."""
    return cell(value).replace("|", "\\|").replace("\n", "<br>")


def _md_items(items: list[str | Item], depth: int = 0) -> list[str]:
    lines = []
    for item in items:
        text, children = (item.text, item.children) if isinstance(item, Item) else (item, [])
        lines.append("  " * depth + "- " + text)
        lines += _md_items(children, depth + 1)
    return lines


def _fence(text: str) -> str:
    """Three backticks, or more than the longest run of them in the code."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def to_markdown(blocks: list[Block], base_dir: Path) -> str:
    """Markdown; image paths relative to `base_dir` (where the .md file lives)."""
    out: list[str] = []
    for i, block in enumerate(blocks):
        if isinstance(block, FrontMatter):
            if i:
                raise ValueError("FrontMatter must be the first block of a document")
            out.append("---\n" + yaml.safe_dump(block.data, sort_keys=False).strip() + "\n---")
        elif isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Para):
            out.append(block.text)
        elif isinstance(block, Table):
            rows = [block.header, *block.rows]
            lines = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
            lines.insert(1, "|" + "---|" * len(block.header))
            out.append("\n".join(lines))
        elif isinstance(block, Bullets):
            out.append("\n".join(_md_items(block.items)))
        elif isinstance(block, Code):
            fence = _fence(block.text)
            out.append(f"{fence}{block.language}\n{block.text.rstrip()}\n{fence}")
        elif isinstance(block, Image):
            target = Path(os.path.relpath(block.path, base_dir)).as_posix()
            out.append(f"![{block.alt}]({target})")
        elif isinstance(block, Html):
            out.append(block.markup)
        out.append("")
    return "\n".join(out)


def write_markdown(blocks: list[Block], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_markdown(blocks, path.parent), encoding="utf-8")


# ---------------------------------------------------------------------------------- HTML


def _pair_up(parts: list[str], mark: str) -> list[str]:
    """Text split on a mark; an unpaired last mark stays literal text."""
    if len(parts) % 2 == 0:
        parts[-2:] = [mark.join(parts[-2:])]
    return parts


def inline_html(text: str) -> str:
    """Text with `code` and **bold** as escaped HTML; no bold inside code."""
    spans = _pair_up(text.split("`"), "`")
    code = [f"<code>{html.escape(span)}</code>" for span in spans[1::2]]
    # the code spans stand in as NUL while bold is paired, then go back in their places
    bold = _pair_up(html.escape("\0".join(spans[0::2])).split("**"), "**")
    for i in range(1, len(bold), 2):
        bold[i] = f"<strong>{bold[i]}</strong>"
    prose = "".join(bold).split("\0")
    return "".join(piece for pair in zip(prose, [*code, ""], strict=True) for piece in pair)


def _html_items(items: list[str | Item]) -> str:
    lis = []
    for item in items:
        if isinstance(item, Item):
            nested = f"<ul>{_html_items(item.children)}</ul>" if item.children else ""
            lis.append(f"<li>{inline_html(item.text)}{nested}</li>")
        else:
            lis.append(f"<li>{inline_html(item)}</li>")
    return "".join(lis)


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       color: #1f2328; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; }
th { background: #f6f8fa; } code { background: #f6f8fa; padding: 0 .2rem; }
pre { background: #f6f8fa; padding: .6rem; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #d0d7de; } h1 { border-bottom: 1px solid #d0d7de; }
"""


def to_html(blocks: list[Block], title: str) -> str:
    """A standalone page: styles inline, images embedded as data URIs, front matter left out."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{inline_html(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{inline_html(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{inline_html(cell(v))}</td>" for v in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(block, Bullets):
            body.append(f"<ul>{_html_items(block.items)}</ul>")
        elif isinstance(block, Code):
            body.append(f"<pre><code>{html.escape(block.text.rstrip())}</code></pre>")
        elif isinstance(block, Image):
            mime = mimetypes.guess_type(block.path.name)[0] or "image/png"
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            alt = html.escape(block.alt)
            body.append(f'<p><img alt="{alt}" src="data:{mime};base64,{data}"></p>')
        elif isinstance(block, Html):
            body.append(block.markup)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_html(blocks: list[Block], path: Path, title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(blocks, title), encoding="utf-8")
