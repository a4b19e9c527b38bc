"""Every link and file mention a newcomer follows resolves (issue 15): the relative links
of README.md and docs/*.md point to files of the repository, and a link whose text names
a function or class (`` [`conv2d_forward`](../clearconv/reference.py) ``) points to a
Python file that defines it; every ``*.md`` the README, the docs, the CLI (its help and
the strings it prints) and the explain figures' index.html mention is a file there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
MENTION = re.compile(r"(?<![\w/.\-])((?:[\w.\-]+/)*[\w.\-]+\.md)\b")
NAME = re.compile(r"^`([A-Za-z_][\w.]*)`$")


def _prose(text: str) -> str:
    """The text outside code blocks, fenced or indented (links inside them are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"^    .*$", "", text, flags=re.M)


def _defined(path: Path) -> set[str]:
    """Names of the functions, classes and assignments of a module (methods included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _links(doc: Path) -> list[tuple[str, str]]:
    return [(text, target) for text, target in LINK.findall(_prose(doc.read_text("utf-8")))
            if not re.match(r"^[a-z]+:", target) and not target.startswith("#")]


def test_the_documents_exist():
    assert (ROOT / "docs" / "MATH.md").is_file() and (ROOT / "docs" / "ARCHITECTURE.md").is_file()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves_and_names_what_its_file_defines(doc):
    missing, undefined = [], []
    for text, target in _links(doc):
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
            continue
        m = NAME.match(text.strip())
        if m and path.suffix == ".py" and not m.group(1).endswith(".py"):
            if m.group(1).split(".")[-1] not in _defined(path):
                undefined.append(f"{text} -> {target}")
    assert not missing, f"{doc.name}: links to missing files: {missing}"
    assert not undefined, f"{doc.name}: links naming what the file does not define: {undefined}"


def _mentions_resolve(text: str, *bases: Path) -> list[str]:
    return [m for m in MENTION.findall(text) if not any((b / m).is_file() for b in bases)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_md_file_a_document_mentions_exists(doc):
    text = LINK.sub(lambda m: m.group(1), doc.read_text("utf-8"))   # targets checked above
    assert not _mentions_resolve(text, doc.parent, ROOT)


def _cli_texts() -> list[str]:
    """The help of the command and of each subcommand, and every string in cli.py."""
    import argparse

    from clearconv.cli import build_parser

    parser = build_parser()
    texts = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            texts.extend(p.format_help() for p in action.choices.values())
    tree = ast.parse((ROOT / "clearconv" / "cli.py").read_text(encoding="utf-8"))
    texts.extend(n.value for n in ast.walk(tree)
                 if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return texts


def test_every_md_file_the_cli_mentions_exists():
    texts = _cli_texts()
    assert any("docs/MATH.md" in t for t in texts), "the CLI should point to docs/MATH.md"
    bad = sorted({m for t in texts for m in _mentions_resolve(t, ROOT)})
    assert not bad, f"the CLI mentions files that are not in the repository: {bad}"


def test_index_html_links_resolve_and_its_md_mentions_exist(tmp_path):
    from clearconv.explain._result import ExplainResult
    from clearconv.explain.index import write_index

    (tmp_path / "a.png").write_bytes(b"")
    result = ExplainResult("image", [tmp_path / "a.png"], {}, "description",
                           {"a.png": "caption"}, "title")
    page = write_index(tmp_path, [result], "settings").read_text(encoding="utf-8")
    for target in re.findall(r'(?:href|src)="([^"]+)"', page):
        if not target.startswith("#"):
            assert (tmp_path / target).exists(), target
    assert "docs/MATH.md" in page
    assert not _mentions_resolve(page, ROOT)
