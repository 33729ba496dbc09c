"""Document templates: plain-text files hub/documents/templates/<kind>.txt, no Jinja.

A template is read line by line; blank lines separate paragraphs.

    # text                  comment, ignored
    @require a, b           facts fields that must be set for this kind (ValueError otherwise)
    @addressee              the 主送 line: "单位名称（负责人：某某）：", flush left
    @facts                  the 办件基本情况 table (case no., item, dates, lateness)
    @violations             numbered list of the problems found (violations in Chinese, lateness)
    @timeline               the 办理过程 table: 序号 / 时间 / 办理环节
    @requirements           numbered list: facts.requirements when given, else the default lines
                            that follow, one item a line, up to the next blank line
    ## text                 a heading (一、…), emboldened
    ?field text             a paragraph kept only when facts.field is set (?!field: only when not)
    any other text          a body paragraph, indented two characters; lines are joined

Text may use ${name} placeholders (string.Template); `placeholders()` lists the names. An unknown
name is an error naming the template and the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

from hub.documents.kinds import KINDS

BLOCKS = ("addressee", "facts", "violations", "timeline", "requirements")
_COND = re.compile(r"^\?(!?)([a-z_]+)\s+(.*)$")


class TemplateError(ValueError):
    """A template file that cannot be parsed or filled in."""


@dataclass(frozen=True)
class Block:
    """One element of a document body."""

    kind: str  # "para", "heading" or one of BLOCKS
    text: str = ""  # template text (para / heading)
    items: tuple[str, ...] = ()  # default items (requirements)
    cond: str = ""  # facts field the paragraph depends on ("" = always)
    negate: bool = False  # keep when the field is NOT set


@dataclass(frozen=True)
class DocTemplate:
    kind: str
    requires: tuple[str, ...]
    blocks: tuple[Block, ...]


def parse(kind: str, text: str) -> DocTemplate:
    """Parse template text (see the module doc)."""
    requires: list[str] = []
    blocks: list[Block] = []
    para: list[str] = []
    reqs: list[str] | None = None  # collecting @requirements default items

    def flush() -> None:
        nonlocal para, reqs
        if reqs is not None:
            blocks.append(Block("requirements", items=tuple(reqs)))
            reqs = None
        if para:
            first, rest = para[0], para[1:]
            m = _COND.match(first)
            if m:
                blocks.append(Block("para", "".join([m[3], *rest]), cond=m[2], negate=bool(m[1])))
            else:
                blocks.append(Block("para", "".join(para)))
            para = []

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("#") and not line.startswith("##"):
            continue
        if not line:
            flush()
            continue
        if reqs is not None:
            if line.startswith("@") or line.startswith("##"):
                flush()
            else:
                reqs.append(line)
                continue
        if line.startswith("@require ") or line == "@require":
            flush()
            requires += [n.strip() for n in line[len("@require") :].split(",") if n.strip()]
        elif line.startswith("@"):
            flush()
            name = line[1:].strip()
            if name not in BLOCKS:
                raise TemplateError(
                    f"template {kind}.txt line {lineno}: unknown block @{name}; "
                    f"known: {', '.join('@' + b for b in BLOCKS)}, @require"
                )
            if name == "requirements":
                reqs = []
            else:
                blocks.append(Block(name))
        elif line.startswith("##"):
            flush()
            blocks.append(Block("heading", line[2:].strip()))
        else:
            para.append(line)
    flush()
    return DocTemplate(kind, tuple(requires), tuple(blocks))


@cache
def load(kind: str) -> DocTemplate:
    """The packaged template of a kind (hub/documents/templates/<kind>.txt)."""
    if kind not in KINDS:
        raise ValueError(f"unknown document kind {kind!r}; known: {', '.join(KINDS)}")
    try:
        text = resources.files("hub.documents").joinpath("templates", f"{kind}.txt").read_text("utf-8")
    except FileNotFoundError:
        raise TemplateError(f"no template file templates/{kind}.txt for kind {kind!r}") from None
    return parse(kind, text)


def fill(kind: str, text: str, values: dict[str, str]) -> str:
    """Substitute ${name} placeholders; an unknown name raises TemplateError."""
    try:
        return Template(text).substitute(values)
    except KeyError as e:
        raise TemplateError(
            f"template {kind}.txt uses unknown placeholder ${{{e.args[0]}}}; known: {', '.join(sorted(values))}"
        ) from None
    except ValueError as e:
        raise TemplateError(f"template {kind}.txt: {e}") from None


def placeholders(template: DocTemplate) -> set[str]:
    """Names used as ${name} in a template."""
    names: set[str] = set()
    for b in template.blocks:
        for t in (b.text, *b.items):
            for m in Template.pattern.finditer(t):
                n = m.group("named") or m.group("braced")
                if n:
                    names.add(n)
    return names
