"""Every `pacelink` command the README and docs/ show is one the real CLI accepts.

A partner's analyst copies commands from the docs; one that names an option the CLI lost
fails on their machine, not here. Commands in shell code blocks are parsed in full by the
CLI's own parser (options, their values, required options and arguments); usage lines
(`--port P`, `[--wait]`) and commands quoted inline in the text are checked for their
command path and option names, since they show placeholders or part of a command
(`pacelink link --duplicates linked`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from encoder.cli import app, load_plugins

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`(pacelink [^`]+)`")
# Synopsis notation the docs use: optional parts in brackets, repetition marks.
_NOTATION = re.compile(r"[\[\]]")
_REPEAT = {"...", "…"}


@dataclass(frozen=True)
class Documented:
    """One command as written in a document."""

    where: str
    text: str
    complete: bool  # a command from a code block, not a usage line: parsed in full


def _join_continuations(block: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, line in enumerate(block.splitlines()):
        if not pending:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append((start, pending + stripped))
        pending = ""
    return lines


def _documented() -> list[Documented]:
    found: list[Documented] = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT).as_posix()
        for fence in _FENCE.finditer(text):
            if fence.group(1) not in ("", "sh", "bash", "shell", "console"):
                continue
            first_line = text.count("\n", 0, fence.start()) + 2
            for offset, line in _join_continuations(fence.group(2)):
                command = line.strip().removeprefix("$ ")
                if command.startswith("pacelink "):
                    found.append(
                        Documented(f"{name}:{first_line + offset}", command, not _synopsis(command))
                    )
        prose = _FENCE.sub("", text)
        for match in _INLINE.finditer(prose):
            found.append(Documented(f"{name} (inline)", match.group(1), False))
    return found


def _synopsis(command: str) -> bool:
    """A usage line (`--port P`, `[--wait]`, `T|auto`): placeholders, not values to parse."""
    words = command.split()
    return "[" in command or "|" in command or any(w in _REPEAT for w in words)


def _words(command: str) -> list[str]:
    words = shlex.split(_NOTATION.sub(" ", command), comments=True)
    return [w for w in words if w not in _REPEAT][1:]


# Typer builds on its own copy of Click, whose classes are not public: groups are told by
# their `get_command`, and usage errors are TyperExceptions.
def _is_group(command: Any) -> bool:
    return hasattr(command, "get_command")


def _resolve(words: list[str]) -> tuple[Any, list[str], list[str]]:
    """The command the words name, its path and the words left for it."""
    load_plugins()
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    while _is_group(command) and words and not words[0].startswith("-"):
        sub = command.get_command(typer.Context(command), words[0])
        if sub is None:
            raise AssertionError(f"no command {' '.join([*path, words[0]])!r}")
        path.append(words[0])
        command, words = sub, words[1:]
    return command, path, words


COMMANDS = _documented()


def test_the_docs_show_commands() -> None:
    """The extraction itself works: the README's quickstart commands are all found."""
    shown = {" ".join(_resolve(_words(c.text))[1]) for c in COMMANDS}
    for expected in ("keygen", "encode", "inspect", "upload", "results", "unit serve",
                     "unit project create", "unit run", "link", "validate-schema"):  # fmt: skip
        assert expected in shown


@pytest.mark.parametrize("doc", COMMANDS, ids=[f"{c.where}: {c.text[:60]}" for c in COMMANDS])
def test_documented_command_is_accepted(doc: Documented) -> None:
    command, path, words = _resolve(_words(doc.text))
    assert path, f"{doc.where}: {doc.text!r} names no command"
    if _is_group(command):
        assert not words, f"{doc.where}: {doc.text!r} stops at a command group"
        return
    if doc.complete:
        try:
            command.make_context(" ".join(["pacelink", *path]), list(words))
        except typer.TyperException as exc:
            pytest.fail(f"{doc.where}: {doc.text!r} is refused by the CLI: {exc}")
        return
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words:
        option = word.split("=", 1)[0]
        if option.startswith("--"):
            assert option in known, f"{doc.where}: {doc.text!r}: no option {option}"


def test_a_wrong_option_is_caught() -> None:
    """The check can fail: a documented command with an option the CLI lacks is refused."""
    command, path, words = _resolve(_words("pacelink inspect x.plk --no-such-option"))
    with pytest.raises(typer.TyperException, match="no-such-option"):
        command.make_context(" ".join(path), words)


def _all_options(command: Any) -> set[str]:
    names = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    if _is_group(command):
        context = typer.Context(command)
        for name in command.list_commands(context):
            names |= _all_options(command.get_command(context, name))
    return names


_OPTION_IN_PROSE = re.compile(r"`(--[a-z][a-z0-9-]*)[^`]*`")


def test_options_named_in_prose_exist() -> None:
    """An option the text names on its own (`--consent-values`) is one some command has."""
    load_plugins()
    known = _all_options(typer.main.get_command(app))
    for path in DOCS:
        if path.name == "benchmarks.md":  # options of the benchmark scripts, not of pacelink
            continue
        prose = _FENCE.sub("", path.read_text(encoding="utf-8"))
        for match in _OPTION_IN_PROSE.finditer(prose):
            assert match.group(1) in known, f"{path.name}: no pacelink command has {match.group(1)}"
