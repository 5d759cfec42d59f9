"""The docs tell the truth about the command line and the repository:
every command and flag README.md and docs/*.md show exists (parsed by the
real parsers), and every link and repository path in the Markdown files
resolves inside the repository.

Nothing here lists the docs or their commands: the files are found and read
as they are when the test runs, so a new doc is checked the moment it lands.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
MARKDOWN = sorted(path for path in ROOT.rglob("*.md")
                  if not any(part.startswith(".") or part in ("run", "build", "dist", "node_modules")
                             for part in path.relative_to(ROOT).parts[:-1]))

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# A backticked repository path: has a slash, ends in a file name with a known extension or a slash.
PATH_LIKE = re.compile(r"^(?:\.\.?/)*[\w.-]+(?:/[\w.-]+)*"
                       r"(?:\.(?:md|py|json|js|html|css|toml|ini|txt|cfg|sh|init|config)|/)$")


# ------------------------------------------------------------------ reading
def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    for match in FENCE.finditer(text):
        yield match.group(1), match.group(2)


def prose(text: str) -> str:
    """The text outside fenced blocks."""
    return FENCE.sub("", text)


def shell_lines(text: str) -> Iterator[str]:
    """Command lines of ```sh blocks (continuations joined, comments dropped)."""
    for language, body in fenced_blocks(text):
        if language not in ("sh", "shell", "bash", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip()
            if language == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            if line and not line.startswith("#"):
                yield line


def code_spans(text: str) -> Iterator[str]:
    for span in SPAN.findall(prose(text)):
        yield span.replace("\\|", "|").strip()


# ------------------------------------------------------------- the parsers
@lru_cache(maxsize=None)
def parser_of(program: str) -> argparse.ArgumentParser:
    if program == "pineapple-jobs":
        from pineapple.cli.main import build_parser
    elif program == "pineapple-jobd":
        from pineapple.daemon.main import build_parser
    else:
        raise KeyError(program)
    return build_parser()


def children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for child in children(parser).values():
        yield from all_parsers(child)


@lru_cache(maxsize=None)
def module_help(module: str) -> str:
    """``python -m MODULE --help`` as the user would run it (from the checkout)."""
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"python -m {module} --help failed:\n{result.stderr}"
    return result.stdout


@lru_cache(maxsize=None)
def known_flags() -> frozenset[str]:
    """Every flag of our programs (and of opkg, which the opkg docs quote)."""
    from devtools.devrun import build_parser as devrun_parser
    from devtools.opkgsim.args import LONG_OPTIONS

    flags = set()
    for program in ("pineapple-jobs", "pineapple-jobd"):
        for parser in all_parsers(parser_of(program)):
            flags |= options(parser)
    flags |= options(devrun_parser())
    flags |= {f"--{name}" for name in LONG_OPTIONS}
    return frozenset(flags)


@lru_cache(maxsize=None)
def make_targets() -> tuple[frozenset[str], str]:
    text = (ROOT / "Makefile").read_text()
    targets = set()
    for match in re.finditer(r"^([\w.-][\w. -]*?)\s*:(?![=])", text, re.M):
        targets |= set(match.group(1).split())
    return frozenset(targets), text


# ------------------------------------------------------------ the checks
def words_of(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def program_of(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def check_program_line(program: str, args: list[str], example: bool) -> list[str]:
    """Problems with ``program args``: its commands and flags exist; an
    ``example`` (a line of a shell block, not a usage fragment) also parses."""
    parser = parser_of(program)
    synopsis = not example or any(mark in word for word in args for mark in ("[", "...", "…"))
    problems, path, rest = [], [], list(args)
    while rest and children(parser):
        word = rest[0].strip("[]")
        if word.startswith("-"):
            problems += [f"{flag} (before the command)" for flag in flags_in([rest.pop(0)])
                         if flag not in options(parser)]
            if rest and not rest[0].startswith("-") and word in ("--socket", "--timeout"):
                rest.pop(0)  # their value
            continue
        alternatives = word.split("|")
        unknown = [name for name in alternatives if name not in children(parser)]
        if unknown:
            if not word.isupper():  # not a placeholder such as JOB
                problems.append(f"no command {' '.join(unknown)!r}")
            break
        rest.pop(0)
        path.append(alternatives[0])
        parser = children(parser)[alternatives[0]]
    problems += [f"{' '.join([program, *path])}: no option {flag}" for flag in flags_in(rest)
                 if flag not in options(parser)]
    if not problems and not synopsis:
        problems += parse_examples(program, args)
    return problems


def flags_in(words: list[str]) -> list[str]:
    flags = []
    for word in words:
        for part in word.strip("[]").split("|"):
            flag = part.split("=", 1)[0].rstrip(".,;:)]…")
            if re.fullmatch(r"--[a-z][a-z0-9-]*", flag):
                flags.append(flag)
    return flags


def parse_examples(program: str, args: list[str]) -> list[str]:
    """Parse the example for real; ``a|b|c`` alternatives each in turn."""
    problems = []
    for variant in expand_alternatives(args):
        if any(word in ("-h", "--help", "--version") for word in variant):
            continue
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                parser_of(program).parse_args(variant)
        except SystemExit:
            problems.append(f"{program} {' '.join(variant)}: {stderr.getvalue().strip().splitlines()[-1]}")
    return problems


def expand_alternatives(args: list[str]) -> list[list[str]]:
    for index, word in enumerate(args):
        if "|" in word and not word.startswith(("{", "'", '"')) and " " not in word:
            return [variant for choice in word.split("|")
                    for variant in expand_alternatives([*args[:index], choice, *args[index + 1:]])]
    return [args]


def check_line(line: str, example: bool = True) -> list[str]:
    """Problems with one command line (``example``) or code span (unknown programs are not ours: skipped)."""
    words = words_of(line.replace("$PWD/", ""))
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value command
        words.pop(0)
    if not words:
        return []
    program = program_of(words[0])
    if program in ("pineapple-jobs", "pineapple-jobd"):
        return check_program_line(program, words[1:], example)
    if program == "make" and len(words) > 1:
        targets, makefile = make_targets()
        problems = []
        for word in words[1:]:
            if "=" in word:
                variable = word.split("=", 1)[0]
                if f"$({variable})" not in makefile and not re.search(rf"^{variable}\s*\??=", makefile, re.M):
                    problems.append(f"make: the Makefile has no variable {variable}")
            elif word not in targets and not word.startswith("-"):
                problems.append(f"make: no target {word}")
        return problems
    if program.startswith("python") and words[1:2] == ["-m"] and len(words) > 2 and \
            words[2].split(".")[0] in ("devtools", "pineapple", "tools", "bench"):
        text = module_help(words[2])
        return [f"python -m {words[2]}: its --help has no {flag}" for flag in flags_in(words[3:])
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]
    return []


def command_spans(text: str) -> Iterator[str]:
    """Inline code that is a command line, or a `pineapple-jobs` usage fragment with flags."""
    commands = children(parser_of("pineapple-jobs"))
    for span in code_spans(text):
        first = span.split(" ", 1)[0]
        if program_of(first) in ("pineapple-jobs", "pineapple-jobd", "make") or span.startswith("python -m "):
            yield span
        elif first in commands and "--" in span:
            yield f"pineapple-jobs {span}"  # e.g. the usage column of docs/cli.md


def doc_ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


# ------------------------------------------------------------------ tests
def test_the_docs_are_found():
    names = doc_ids(DOCS)
    assert "README.md" in names and "docs/protocol.md" in names and len(names) >= 6


@pytest.mark.parametrize("doc", DOCS, ids=doc_ids(DOCS))
def test_every_command_shown_exists(doc):
    text = doc.read_text()
    lines = [(line, True) for line in shell_lines(text)] + [(span, False) for span in command_spans(text)]
    problems = [f"{line!r}: {problem}" for line, example in lines for problem in check_line(line, example)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=doc_ids(DOCS))
def test_every_flag_shown_exists(doc):
    """A flag in prose (`--wait`) belongs to one of our programs (or is opkg's, in the opkg docs)."""
    spans = [span for span in code_spans(doc.read_text()) if span.startswith("--")]
    unknown = sorted({flag for span in spans for flag in flags_in([span.split(" ", 1)[0]])} - known_flags())
    assert not unknown, f"{doc.name}: flags no program has: {unknown}"


@pytest.mark.parametrize("doc", MARKDOWN, ids=doc_ids(MARKDOWN))
def test_every_link_resolves_inside_the_repository(doc):
    problems = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the page
        problems += resolve_problems(doc, target.split("#", 1)[0], base_only=True)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=doc_ids(DOCS))
def test_every_repository_path_named_exists(doc):
    """`docs/engine.md`, `devtools/README.md`, `../x`: backticked paths are links too."""
    problems = []
    for span in code_spans(doc.read_text()):
        placeholder = any(part.isupper() for part in span.split("/"))  # STATE_DIR/schedules.json
        if "/" in span and not span.startswith("/") and PATH_LIKE.match(span) and not placeholder:
            problems += resolve_problems(doc, span, base_only=False)
    assert not problems, "\n".join(problems)


def resolve_problems(doc: Path, target: str, base_only: bool) -> list[str]:
    """A relative path from ``doc`` (a link) or from the repository root (a named path) must exist inside."""
    bases = [doc.parent] if base_only else [doc.parent, ROOT]
    for base in bases:
        path = (base / target).resolve()
        if path != ROOT and ROOT not in path.parents:
            return [f"{doc.name}: {target} points outside the repository"]
        if path.exists():
            return []
    return [f"{doc.name}: {target} does not exist"]


# ------------------------------------------------------- the checker itself
@pytest.mark.parametrize("line, expected", [
    ("pineapple-jobs list --json", []),
    ("pineapple-jobs frobnicate", ["no command 'frobnicate'"]),
    ("pineapple-jobs list --colour", ["pineapple-jobs list: no option --colour"]),
    ("pineapple-jobs schedule add x --job update --weekly mon@04:00", []),
    ("pineapple-jobs schedule pause|resume|explode nightly", ["no command 'explode'"]),
    ("pineapple-jobs install PKG... [--dest DEST] [--shiny]", ["pineapple-jobs install: no option --shiny"]),
    ("pineapple-jobd --print-config", []),
    ("pineapple-jobd --no-such-flag", ["pineapple-jobd: no option --no-such-flag"]),
    ("make run FRESH=1", []),
    ("make deploy", ["make: no target deploy"]),
    ("python -m devtools.devrun --download-delay 0", []),
    ("python -m devtools.devrun --turbo", ["python -m devtools.devrun: its --help has no --turbo"]),
    ("uci commit pineapple-jobd", []),
])
def test_the_checker_catches_what_it_should(line, expected):
    problems = check_line(line)
    assert len(problems) == len(expected), problems
    assert all(any(e in p for p in problems) for e in expected), problems


def test_the_path_checks_catch_a_path_outside(tmp_path):
    doc = ROOT / "docs" / "example.md"  # not written: only its place matters
    assert resolve_problems(doc, "../../shared/reference/opkg.md", base_only=False) == [
        "example.md: ../../shared/reference/opkg.md points outside the repository"]
    assert resolve_problems(doc, "engine.md", base_only=True) == []
    assert resolve_problems(doc, "docs/engine.md", base_only=False) == []
    assert resolve_problems(doc, "nothing-here.md", base_only=True) == ["example.md: nothing-here.md does not exist"]
