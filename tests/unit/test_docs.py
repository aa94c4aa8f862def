"""Every file path and every command the README and the manual name still exists and still parses."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream_scorer.cli.main import build_parser as stream_scorer
from tools.chaos.__main__ import build_parser as chaos
from tools.synth.__main__ import build_parser as synth

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
ROOTS = ("scripts", "stream_scorer", "tools", "benchmarks", "tests", "schemas", "deploy", "docs", "examples", ".ci")
WORD = re.compile(r"[a-z][a-z-]*")
TOOLS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "stream-scorer": stream_scorer,
    "tools.synth": synth,
    "tools.chaos": chaos,
}


def spans(page: Path) -> Iterator[str]:
    """The text of every inline code span and every line of every code block."""
    text = page.read_text()
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        yield from block.splitlines()
    yield from re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))


def paths(page: Path) -> set[str]:
    out = set()
    for span in spans(page):
        for word in span.split():
            word = word.strip(",;:()[]'\"").removeprefix(".venv/bin/python").split("::")[0]
            if word.startswith(tuple(f"{root}/" for root in ROOTS)) and "*" not in word and "<" not in word:
                out.add(word.rstrip("."))
    return out


def commands(page: Path) -> set[tuple[str, ...]]:
    """(tool, subcommand...) for every ``stream-scorer X Y`` and ``python -m tools.T X`` named."""
    out = set()
    for span in spans(page):
        for tool in TOOLS:
            # (not the ACL user of the same name: "ACL SETUSER stream-scorer on ...", "User:stream-scorer")
            for match in re.finditer(r"(?<!SETUSER )(?<!User:)" + re.escape(tool) + r"((?: [a-z][a-z-]*){0,2})", span):
                words = [w for w in match.group(1).split() if WORD.fullmatch(w)]
                out.add((tool, *words))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_path_named_exists(page: Path) -> None:
    missing = sorted(p for p in paths(page) if not (REPO / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def is_command(parser: argparse.ArgumentParser, words: list[str]) -> bool:
    """Whether ``words`` name a path in the command tree; once a command takes no subcommand, what follows
    is its arguments or prose."""
    for word in words:
        choices = subcommands(parser)
        if not choices:
            return True
        if word not in choices:
            return False
        parser = choices[word]
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_named_parses(page: Path) -> None:
    wrong = [" ".join([tool, *words]) for tool, *words in commands(page) if not is_command(TOOLS[tool](), words)]
    assert not wrong, f"{page.name} names commands that do not exist: {sorted(wrong)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_run_with_python_m_exists(page: Path) -> None:
    modules = {m for span in spans(page) for m in re.findall(r"python -m ([a-z_][\w.]*)", span)}
    missing = [
        m
        for m in sorted(modules)
        if not (REPO / (m.replace(".", "/") + ".py")).exists()
        and not (REPO / m.replace(".", "/") / "__main__.py").exists()
    ]
    assert not missing, f"{page.name} runs modules that do not exist: {missing}"


def test_the_readme_is_one_screen_and_links_every_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.count("\n") <= 150
    for page in PAGES[1:]:
        assert str(page.relative_to(REPO)) in readme, page


def test_the_security_page_shows_the_rights_files_as_they_are() -> None:
    page = (REPO / "docs" / "security.md").read_text()
    for path in ("deploy/security/kafka-acls.sh", "deploy/security/redis-acl.txt"):
        assert (REPO / path).read_text() in page, f"docs/security.md must show {path} verbatim"
