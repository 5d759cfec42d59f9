"""Package names must never reach opkg as options or shell text."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pineapple.errors import INVALID_PACKAGE_NAME, JobError
from pineapple.opkg.names import (
    ALLOWED_CHARS,
    MAX_NAME_LENGTH,
    MAX_NAMES,
    is_valid_package_name,
    validate_package_name,
    validate_package_names,
)

GOOD = ["kmod-usb-net", "python3-requests", "libstdcpp6", "gcc+plugin", "lib.so_1", "a", "0ad"]
BAD = [
    "--force-depends",
    "-d",
    "a;reboot",
    "$(reboot)",
    "`reboot`",
    "A",
    "Kmod-usb-net",
    "",
    "a b",
    "a\nb",
    "a\tb",
    "../x",
    "x/y",
    ".hidden",
    "..",
    "+plus",
    "_under",
    "caf\u00e9",
    "x" * (MAX_NAME_LENGTH + 1),
]


@pytest.mark.parametrize("name", GOOD)
def test_normal_names_are_accepted_unchanged(name: str) -> None:
    assert validate_package_name(name) == name
    assert is_valid_package_name(name)


def test_longest_allowed_name_is_accepted() -> None:
    name = "a" * MAX_NAME_LENGTH
    assert validate_package_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names_are_rejected_with_the_stable_code(name: str) -> None:
    with pytest.raises(JobError) as caught:
        validate_package_name(name)
    assert caught.value.code == INVALID_PACKAGE_NAME
    assert "lowercase letters, digits" in caught.value.message
    assert not is_valid_package_name(name)


@pytest.mark.parametrize("value", [None, 3, b"curl", ["curl"], {"name": "curl"}])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(JobError) as caught:
        validate_package_name(value)
    assert caught.value.code == INVALID_PACKAGE_NAME
    assert type(value).__name__ in caught.value.message


def test_message_quotes_the_name_safely_and_truncates_it() -> None:
    hostile = "a\n$(reboot)" + "x" * 5000
    with pytest.raises(JobError) as caught:
        validate_package_name(hostile)
    message = caught.value.message
    assert "\n" not in message
    assert repr(hostile[:40]) in message
    assert len(message) < 300
    assert "5011 characters" in message


def test_short_bad_name_is_shown_whole() -> None:
    with pytest.raises(JobError, match=r"'a;reboot'"):
        validate_package_name("a;reboot")


def test_list_is_validated_and_deduplicated_in_order() -> None:
    names = ["curl", "kmod-usb-net", "curl", "lib.so_1", "kmod-usb-net"]
    assert validate_package_names(names) == ["curl", "kmod-usb-net", "lib.so_1"]


def test_tuple_is_accepted_as_a_list() -> None:
    assert validate_package_names(("curl",)) == ["curl"]


@pytest.mark.parametrize("value", ["curl", None, {"curl"}, {"curl": 1}, 7])
def test_list_must_be_a_list(value: object) -> None:
    with pytest.raises(JobError) as caught:
        validate_package_names(value)
    assert caught.value.code == INVALID_PACKAGE_NAME


def test_empty_list_is_rejected() -> None:
    with pytest.raises(JobError, match="at least one"):
        validate_package_names([])


def test_too_many_names_are_rejected() -> None:
    validate_package_names([f"pkg{i}" for i in range(MAX_NAMES)])
    with pytest.raises(JobError, match="too many") as caught:
        validate_package_names([f"pkg{i}" for i in range(MAX_NAMES + 1)])
    assert caught.value.code == INVALID_PACKAGE_NAME


def test_one_bad_entry_rejects_the_list() -> None:
    with pytest.raises(JobError, match="--force-depends"):
        validate_package_names(["curl", "--force-depends"])


def test_non_string_entry_rejects_the_list() -> None:
    with pytest.raises(JobError, match="int"):
        validate_package_names(["curl", 5])


@given(st.text(max_size=MAX_NAME_LENGTH + 20))
def test_anything_accepted_is_in_the_alphabet_and_not_an_option(text: str) -> None:
    if is_valid_package_name(text):
        assert validate_package_name(text) == text
        assert set(text) <= ALLOWED_CHARS
        assert not text.startswith("-")
        assert 0 < len(text) <= MAX_NAME_LENGTH
    else:
        with pytest.raises(JobError):
            validate_package_name(text)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+-._;$() /", max_size=40))
def test_names_near_the_alphabet_never_start_with_a_dash(text: str) -> None:
    try:
        accepted = validate_package_name(text)
    except JobError:
        return
    assert accepted[0] not in "-+._"
    assert set(accepted) <= ALLOWED_CHARS
