"""docs/config.md says what the code does: every option, its default and its
environment variable are listed, and nothing else is."""
from __future__ import annotations

import pathlib
import re

from pineapple.daemon.config import SECTIONS

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "config.md"


def documented_rows() -> dict[tuple[str, str], str]:
    rows, section = {}, None
    for line in DOCS.read_text().splitlines():
        heading = re.match(r"### `config (\w+) '", line)
        if heading:
            section = heading.group(1)
        row = re.match(r"\| `(\w+)` \| `([^`]*)` \|", line)
        if row and section:
            rows[(section, row.group(1))] = row.group(2)
    return rows


def shown(default: object) -> str:
    if isinstance(default, bool):
        return "1" if default else "0"
    if isinstance(default, list):
        return " ".join(default) or "(empty list)"
    return str(default) if default != "" else "(empty)"


def test_every_option_is_documented_with_its_default():
    rows = documented_rows()
    expected = {(section, option.name): shown(option.default)
                for section, (_, settings) in SECTIONS.items() for option in settings.OPTIONS}
    assert rows == expected


def test_environment_names_are_documented():
    text = DOCS.read_text()
    for section, (_, settings) in SECTIONS.items():
        prefix = "PINEAPPLE_JOBD_" + ("" if section == "daemon" else f"{section.upper()}_")
        for option in settings.OPTIONS:
            assert f"`{prefix}{option.name.upper()}`" in text


def test_ranges_are_documented():
    text = DOCS.read_text()
    for section, (_, settings) in SECTIONS.items():
        for option in settings.OPTIONS:
            if option.minimum is None:
                continue
            bound = (f"{option.minimum:g} to {option.maximum:g}" if option.maximum is not None
                     else f"at least {option.minimum:g}")
            row = next(line for line in text.splitlines()
                       if line.startswith(f"| `{option.name}` |") and "PINEAPPLE_JOBD_" in line)
            assert f"range: {bound} |" in row, f"{section}.{option.name}"


def test_job_type_options_are_documented():
    from pineapple.daemon.jobtypes import OPTIONS

    text = DOCS.read_text()
    section = text[text.index("## Job types of your own"):]
    rows = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    assert rows == set(OPTIONS)
