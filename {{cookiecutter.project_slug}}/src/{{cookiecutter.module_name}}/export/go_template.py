"""Go's text/template, the subset Ollama's chat templates use, rendered in Python: so a
Modelfile's TEMPLATE can be checked against the model's own Jinja chat template before it is
written (export/ollama.py). Text and `{{- ` / ` -}}` trims; `.Field`, `$.Field`, `$var`; `if` /
`else if` / `else`; `range` with `$i, $x :=`; `$x := ...` and `$x = ...`; eq, ne, and, or, not,
len, slice, index. Anything else is a GoTemplateError (a ValueError)."""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GO_ACTION = re.compile(r"\{\{(-[ \t\r\n])?(.*?)([ \t\r\n]-)?\}\}", re.S)
GO_SPACE = " \t\r\n"
GO_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<number>-?\d+)'
    r"|(?P<declare>:=)|(?P<assign>=)|(?P<punct>[(),|])"
    r"|(?P<word>\$?[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*|\$(?:\.[A-Za-z_]\w*)*|(?:\.[A-Za-z_]\w*)+|\.))"
)
GO_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class GoTemplateError(ValueError):
    pass


def go_tokens(template: str) -> list[tuple[str, str]]:
    """("text", ...) and ("action", ...) pieces, with `{{- ` / ` -}}` trimming applied and
    comments dropped."""
    pieces: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in GO_ACTION.finditer(template):
        text = template[position : match.start()]
        text = text.lstrip(GO_SPACE) if trim_next else text
        pieces.append(("text", text.rstrip(GO_SPACE) if match.group(1) else text))
        action = match.group(2).strip()
        if not (action.startswith("/*") and action.endswith("*/")):
            pieces.append(("action", action))
        position, trim_next = match.end(), bool(match.group(3))
    tail = template[position:]
    pieces.append(("text", tail.lstrip(GO_SPACE) if trim_next else tail))
    return pieces


def lex(expression: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expression.rstrip()):
        match = GO_TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise GoTemplateError(f"Go template: cannot read {expression[position:]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


@dataclass
class Node:
    kind: str
    """text, action, if or range."""
    value: Any = None
    branches: list = field(default_factory=list)
    """if: (condition, body) per if / else if; range: one (`$i, $x := .List`, body)."""
    otherwise: list | None = None


def parse_nodes(pieces: list[tuple[str, str]], index: int, stops: tuple[str, ...]):
    """Nodes from pieces[index] up to an action in `stops` (returns nodes, the stop, index)."""
    nodes: list[Node] = []
    while index < len(pieces):
        kind, value = pieces[index]
        if kind == "text":
            if value:
                nodes.append(Node("text", value))
            index += 1
            continue
        word = value.split(None, 1)[0] if value else ""
        if word in ("end", "else") and word in stops:
            return nodes, value, index
        if word in ("if", "range"):
            node, index = parse_block(pieces, index, word, value[len(word) :].strip())
            nodes.append(node)
            continue
        if word in ("end", "else", "with", "define", "template", "block"):
            raise GoTemplateError(f"Go template: {{{{ {value} }}}} is outside the rendered subset")
        nodes.append(Node("action", lex(value)))
        index += 1
    if stops:
        raise GoTemplateError("Go template: a block without {{ end }}")
    return nodes, None, index


def parse_block(pieces, index: int, word: str, head: str) -> tuple[Node, int]:
    node = Node(word)
    while True:
        body, stop, index = parse_nodes(pieces, index + 1, ("end", "else"))
        node.branches.append((lex(head), body))
        if stop == "end":
            return node, index + 1
        rest = stop[len("else") :].strip()
        if word == "if" and rest.startswith("if "):
            head = rest[len("if ") :]
            continue
        if rest:
            raise GoTemplateError(f"Go template: {{{{ {stop} }}}} is outside the rendered subset")
        node.otherwise, stop, index = parse_nodes(pieces, index + 1, ("end",))
        return node, index + 1


def truth(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (hasattr(value, "__len__") and not len(value))


def go_and(*args: Any) -> Any:
    return next((arg for arg in args if not truth(arg)), args[-1])


def go_or(*args: Any) -> Any:
    return next((arg for arg in args if truth(arg)), args[-1])


GO_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "eq": lambda first, *others: any(first == other for other in others),
    "ne": lambda a, b: a != b,
    "and": go_and,
    "or": go_or,
    "not": lambda value: not truth(value),
    "len": len,
    "slice": lambda items, start=0, end=None: items[start:end],
    "index": lambda items, key: items[key],
}


@dataclass
class Scope:
    dot: Any
    root: Any
    variables: list[dict[str, Any]]

    def lookup(self, name: str) -> Any:
        for frame in reversed(self.variables):
            if name in frame:
                return frame[name]
        raise GoTemplateError(f"Go template: undefined variable ${name}")

    def assign(self, name: str, value: Any) -> None:
        for frame in reversed(self.variables):
            if name in frame:
                frame[name] = value
                return
        raise GoTemplateError(f"Go template: ${name} assigned before it is declared")


def field_path(value: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(value, dict) or name not in value:
            raise GoTemplateError(f"Go template: no field {name!r} here")
        value = value[name]
    return value


def operand(kind: str, text: str, scope: Scope) -> Any:
    if kind == "string":
        return re.sub(r"\\(.)", lambda m: GO_ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
    if kind == "raw":
        return text[1:-1]
    if kind == "number":
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text == ".":
        return scope.dot
    if text.startswith("."):
        return field_path(scope.dot, text[1:].split("."))
    if text.startswith("$"):
        name, *path = text[1:].split(".")
        return field_path(scope.root if name == "" else scope.lookup(name), path)
    raise GoTemplateError(f"Go template: {text!r} is outside the rendered subset")


def evaluate(tokens: list[tuple[str, str]], scope: Scope) -> Any:
    """A command: a function and its arguments, or one operand; `( ... )` nests a command."""
    values, function, index = [], None, 0
    while index < len(tokens):
        kind, text = tokens[index]
        if text == "(":
            depth, close = 0, index
            for close in range(index, len(tokens)):
                depth += {"(": 1, ")": -1}.get(tokens[close][1], 0)
                if depth == 0:
                    break
            values.append(evaluate(tokens[index + 1 : close], scope))
            index = close + 1
            continue
        if kind == "punct":
            raise GoTemplateError(f"Go template: {text!r} is outside the rendered subset")
        if index == 0 and text in GO_FUNCTIONS:
            function = GO_FUNCTIONS[text]
        else:
            values.append(operand(kind, text, scope))
        index += 1
    if function is not None:
        return function(*values)
    if len(values) != 1:
        raise GoTemplateError(f"Go template: {' '.join(t for _, t in tokens)!r} is not a command")
    return values[0]


def split_declaration(tokens: list[tuple[str, str]]) -> tuple[list[str], str | None, list]:
    """(variable names, ":=" / "=" / None, the command)."""
    for index, (kind, _) in enumerate(tokens):
        if kind in ("declare", "assign"):
            names = [text[1:] for kind_, text in tokens[:index] if kind_ == "word"]
            return names, tokens[index][1], tokens[index + 1 :]
    return [], None, tokens


def go_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render_nodes(nodes: list[Node], scope: Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "action":
            names, how, command = split_declaration(node.value)
            value = evaluate(command, scope)
            if how == ":=":
                scope.variables[-1][names[0]] = value
            elif how == "=":
                scope.assign(names[0], value)
            else:
                out.append(go_string(value))
        elif node.kind == "if":
            for condition, body in node.branches:
                if truth(evaluate(condition, scope)):
                    render_block(body, scope, out)
                    break
            else:
                render_block(node.otherwise or [], scope, out)
        else:
            render_range(node, scope, out)


def render_block(nodes: list[Node], scope: Scope, out: list[str], frame=None) -> None:
    scope.variables.append(frame or {})
    try:
        render_nodes(nodes, scope, out)
    finally:
        scope.variables.pop()


def render_range(node: Node, scope: Scope, out: list[str]) -> None:
    names, _, command = split_declaration(node.branches[0][0])
    items = evaluate(command, scope)
    if not truth(items):
        render_block(node.otherwise or [], scope, out)
        return
    outer = scope.dot
    for index, item in enumerate(items):
        values = [item] if len(names) == 1 else [index, item]
        scope.dot = item
        render_block(node.branches[0][1], scope, out, dict(zip(names, values, strict=False)))
    scope.dot = outer


def render_go_template(template: str, data: dict) -> str:
    """Render `template` with Go text/template semantics for the subset the chat templates here
    use: text and `{{- ` / ` -}}` trims; `.Field`, `$.Field`, `$var`; `if` / `else if` /
    `else`; `range` with `$i, $x :=`; `$x := ...` and `$x = ...`; eq, ne, and, or, not, len,
    slice, index. Anything else is a GoTemplateError (a ValueError)."""
    nodes, _, _ = parse_nodes(go_tokens(template), 0, ())
    out: list[str] = []
    render_nodes(nodes, Scope(dot=data, root=data, variables=[{}]), out)
    return "".join(out)
