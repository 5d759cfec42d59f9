"""opkg output → progress events, classified errors and outcomes.

The texts are those recorded in /work/shared/reference/opkg.md (measured from
the real opkg-lede), completed where the reference elides with "…" by the
format strings of opkg-lede's source.
"""
from __future__ import annotations

import pytest

from pineapple.errors import (
    CHECKSUM_MISMATCH,
    DOWNLOAD_FAILED,
    HAS_DEPENDENTS,
    INSUFFICIENT_SPACE,
    LOCK_BUSY,
    MISSING_DEPENDENCY,
    OPKG_FAILED,
    SCRIPT_FAILED,
    UNKNOWN_PACKAGE,
)
from pineapple.opkg.output import (
    CONFIGURING,
    DOWNLOADING,
    INSTALLING,
    LIST_FAILED,
    NOTE,
    NOTHING_REMOVED,
    PRECEDENCE,
    REMOVING,
    UNKNOWN,
    UP_TO_DATE,
    UPDATED,
    UPGRADING,
    OpkgError,
    ProgressEvent,
    package_from_url,
    parse_errors,
    parse_progress_line,
    primary_code,
    suggests_update,
    summarize,
)

FEED = "file:///srv/feed"
INSTALL_OK = [
    "Installing myapp (1.2.3-1) to root...",
    f"Downloading {FEED}/myapp_1.2.3-1_all.ipk",
    "Installing mylib (1.0-1) to root...",
    f"Downloading {FEED}/mylib_1.0-1_all.ipk",
    "Configuring mylib.",
    "Configuring myapp.",
]
DEPENDENTS_BLOCK = (
    "Collected errors:\n"
    " * print_dependents_warning: Package mylib is depended upon by packages:\n"
    " * print_dependents_warning: \tmyapp\n"
    " * print_dependents_warning: \totherapp\n"
    " * print_dependents_warning: These might cease to work if package mylib is removed.\n"
    "\n"
    " * print_dependents_warning: Force removal of this package with --force-depends.\n"
    " * print_dependents_warning: Force removal of this package and its dependents\n"
    " * print_dependents_warning: with --force-removal-of-dependent-packages.\n"
)


# ------------------------------------------------------------ progress lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Installing myapp (1.2.3-1) to root...", ProgressEvent(INSTALLING, "myapp", "1.2.3-1")),
        ("Installing lib.so_1 (2:1.0-r3) to sd...", ProgressEvent(INSTALLING, "lib.so_1", "2:1.0-r3")),
        (f"Downloading {FEED}/myapp_1.2.3-1_all.ipk",
         ProgressEvent(DOWNLOADING, "myapp", f"{FEED}/myapp_1.2.3-1_all.ipk")),
        ("Downloading https://downloads.openwrt.org/releases/23.05.3/packages/mipsel_24kc/"
         + "base/kmod-usb-net_5.15.150-1_mipsel_24kc.ipk",
         ProgressEvent(DOWNLOADING, "kmod-usb-net",
                       "https://downloads.openwrt.org/releases/23.05.3/packages/mipsel_24kc/"
                       "base/kmod-usb-net_5.15.150-1_mipsel_24kc.ipk")),
        (f"Downloading {FEED}/Packages.gz", ProgressEvent(DOWNLOADING, "feed", f"{FEED}/Packages.gz")),
        ("Configuring mylib.", ProgressEvent(CONFIGURING, "mylib")),
        ("Removing package myapp from root...", ProgressEvent(REMOVING, "myapp", "root")),
        ("mylib was autoinstalled and is now orphaned, removing.",
         ProgressEvent(REMOVING, "mylib", "autoremove")),
        ("Package myapp (1.2.3-1) installed in root is up to date.",
         ProgressEvent(UP_TO_DATE, "myapp", "1.2.3-1")),
        ("Package mylib is already installed on root.", ProgressEvent(UP_TO_DATE, "mylib")),
        ("Not downgrading package myapp on root from 2.0-1 to 1.0-1.",
         ProgressEvent(UP_TO_DATE, "myapp", "2.0-1")),
        ("Upgrading myapp on root from 1.0-1 to 1.2.3-1...",
         ProgressEvent(UPGRADING, "myapp", "1.2.3-1")),
        ("Unknown package 'nosuchpkg'.", ProgressEvent(UNKNOWN, "nosuchpkg")),
        ("Updated list of available packages in /tmp/root/var/opkg-lists/myfeed",
         ProgressEvent(UPDATED, "myfeed", "/tmp/root/var/opkg-lists/myfeed")),
        ("*** Failed to download the package list from http://bad.example/feed/Packages.gz",
         ProgressEvent(LIST_FAILED, "feed", "http://bad.example/feed/Packages.gz")),
        ("No packages removed.", ProgressEvent(NOTHING_REMOVED)),
        ("Offline root mode: not running failpkg.postinst.",
         ProgressEvent(NOTE, "failpkg", "Offline root mode: not running failpkg.postinst.")),
        ("pkg_run_script: Offline root mode: not running lib.so_1.prerm.",
         ProgressEvent(NOTE, "lib.so_1", "pkg_run_script: Offline root mode: not running lib.so_1.prerm.")),
    ],
)
def test_progress_lines(line: str, expected: ProgressEvent) -> None:
    assert parse_progress_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "",
        "myapp - 1.2.3-1",  # list-installed
        "Package: myapp",  # status/info stanza
        "Status: install user installed",
        "Configuring unpacked packages.",
        "opkg_install_pkg: Installing maintainer scripts.",  # -V2 INFO line
        "Removing obsolete file /usr/bin/old.",
        "Collected errors:",
        "Installing",
        "Downloading ",
    ],
)
def test_other_lines_are_not_progress(line: str) -> None:
    assert parse_progress_line(line) is None


def test_progress_line_tolerates_pty_line_endings() -> None:
    assert parse_progress_line("Configuring mylib.\r\n") == ProgressEvent(CONFIGURING, "mylib")


def test_feed_names_map_index_urls_to_feed_names() -> None:
    feeds = {"http://bad.example/feed": "custom"}
    event = parse_progress_line("*** Failed to download the package list from "
                                "http://bad.example/feed/Packages.gz", feeds)
    assert event == ProgressEvent(LIST_FAILED, "custom", "http://bad.example/feed/Packages.gz")
    assert package_from_url("http://bad.example/feed/Packages", feeds) == "custom"


def test_package_from_url_ignores_other_urls() -> None:
    assert package_from_url("http://example.org/index.html") is None
    assert package_from_url("file:///srv/feed/bigpkg_1.0-1_all.ipk") == "bigpkg"


# ------------------------------------------------- every row of the reference


def test_install_ok() -> None:
    outcome = summarize(0, INSTALL_OK, "")
    assert outcome.ok and outcome.code is None
    assert outcome.errors == [] and outcome.failures == {}
    assert outcome.message == "opkg succeeded"


def test_already_installed() -> None:
    outcome = summarize(0, ["Package myapp (1.2.3-1) installed in root is up to date."], "")
    assert outcome.ok and outcome.code is None


def test_unknown_package() -> None:
    outcome = summarize(
        255,
        ["Unknown package 'nosuchpkg'."],
        "Collected errors:\n * opkg_install_cmd: Cannot install package nosuchpkg.\n",
    )
    assert not outcome.ok
    assert outcome.code == UNKNOWN_PACKAGE
    assert outcome.failures == {"nosuchpkg": UNKNOWN_PACKAGE}
    assert outcome.message == (
        "opkg failed (exit 255):\n * opkg_install_cmd: Cannot install package nosuchpkg."
    )
    assert outcome.errors == [
        OpkgError(UNKNOWN_PACKAGE, "nosuchpkg", "opkg_install_cmd: Cannot install package nosuchpkg.",
                  "opkg_install_cmd"),
    ]


MISSING_DEPENDENCY_STDERR = (
    "Collected errors:\n"
    " * pkg_hash_check_unresolved: cannot find dependency does-not-exist for broken\n"
    " * pkg_hash_fetch_best_installation_candidate: Packages for broken found, "
    "but incompatible with the architectures configured\n"
    " * opkg_install_cmd: Cannot install package broken.\n"
)


def test_missing_dependency() -> None:
    outcome = summarize(255, ["Unknown package 'broken'."], MISSING_DEPENDENCY_STDERR)
    assert outcome.code == MISSING_DEPENDENCY
    assert outcome.failures == {"broken": MISSING_DEPENDENCY}
    # The misleading architecture line must not bring in a second code.
    assert {error.code for error in outcome.errors} == {MISSING_DEPENDENCY}
    assert outcome.errors[0].related == ("does-not-exist",)
    assert "does-not-exist" in outcome.message


def test_missing_dependency_without_stdout() -> None:
    assert summarize(255, [], MISSING_DEPENDENCY_STDERR).code == MISSING_DEPENDENCY


def test_architecture_line_alone_means_no_installable_package() -> None:
    stderr = (
        "Collected errors:\n"
        " * pkg_hash_fetch_best_installation_candidate: Packages for armpkg found, "
        "but incompatible with the architectures configured\n"
        " * opkg_install_cmd: Cannot install package armpkg.\n"
    )
    outcome = summarize(255, ["Unknown package 'armpkg'."], stderr)
    assert outcome.code == UNKNOWN_PACKAGE
    assert {error.code for error in outcome.errors} == {UNKNOWN_PACKAGE}


def test_file_missing_in_feed() -> None:
    stderr = (
        "copy_file: /srv/feed/bigpkg_1.0-1_all.ipk: No such file or directory.\n"
        "Collected errors:\n"
        " * opkg_install_pkg: Failed to download bigpkg. Perhaps you need to run 'opkg update'?\n"
        " * opkg_install_cmd: Cannot install package bigpkg.\n"
    )
    outcome = summarize(255, [f"Downloading {FEED}/bigpkg_1.0-1_all.ipk"], stderr)
    assert outcome.code == DOWNLOAD_FAILED
    assert outcome.failures == {"bigpkg": DOWNLOAD_FAILED}
    assert outcome.suggests_update
    assert [error.code for error in outcome.errors] == [DOWNLOAD_FAILED, DOWNLOAD_FAILED, OPKG_FAILED]
    assert outcome.errors[0].function == "copy_file"
    assert "Perhaps you need to run 'opkg update'?" in outcome.message


def test_file_missing_in_feed_over_http() -> None:
    url = "http://feed.example/packages/bigpkg_1.0-1_mipsel_24kc.ipk"
    stderr = (
        "Collected errors:\n"
        f" * opkg_download: Failed to download {url}, wget returned 8.\n"
        " * opkg_install_pkg: Failed to download bigpkg. Perhaps you need to run 'opkg update'?\n"
        " * opkg_install_cmd: Cannot install package bigpkg.\n"
    )
    outcome = summarize(255, [f"Downloading {url}"], stderr)
    assert outcome.code == DOWNLOAD_FAILED
    assert outcome.errors[0] == OpkgError(
        DOWNLOAD_FAILED, "bigpkg", f"opkg_download: Failed to download {url}, wget returned 8.",
        "opkg_download")
    assert outcome.failures == {"bigpkg": DOWNLOAD_FAILED}


CHECKSUM_LINE = ("Checksum or size mismatch for package mylib. Either the opkg or the package "
                 "index are corrupt. Try 'opkg update'.")


@pytest.mark.parametrize(
    "stderr",
    [
        CHECKSUM_LINE + "\n",
        (f"Collected errors:\n * opkg_install_pkg: {CHECKSUM_LINE}\n"
         " * opkg_install_cmd: Cannot install package mylib.\n"),
    ],
    ids=["bare", "block"],
)
def test_checksum_mismatch(stderr: str) -> None:
    outcome = summarize(255, [], stderr)
    assert outcome.code == CHECKSUM_MISMATCH
    assert outcome.failures == {"mylib": CHECKSUM_MISMATCH}
    assert outcome.suggests_update


def test_sha256_mismatch_of_older_opkg_lede() -> None:
    stderr = (" * opkg_install_pkg: Package mylib sha256sum mismatch. Either the opkg or the "
              "package index are corrupt. Try 'opkg update'.\n")
    assert summarize(255, [], stderr).failures == {"mylib": CHECKSUM_MISMATCH}


def test_not_enough_space() -> None:
    stderr = (
        "Collected errors:\n"
        " * verify_pkg_installable: Only have 0kb available on filesystem /overlay, "
        "pkg bigpkg needs 2048\n"
        " * opkg_install_cmd: Cannot install package bigpkg.\n"
    )
    outcome = summarize(255, ["Installing bigpkg (1.0-1) to root..."], stderr)
    assert outcome.code == INSUFFICIENT_SPACE
    assert outcome.failures == {"bigpkg": INSUFFICIENT_SPACE}


@pytest.mark.parametrize(
    "stderr",
    [
        ('pkg_run_script: package "failpkg" postinst script returned status 3.\n'
         "opkg_configure: failpkg.postinst returned 3.\n"),
        ("Collected errors:\n"
         ' * pkg_run_script: package "failpkg" postinst script returned status 3.\n'
         " * opkg_configure: failpkg.postinst returned 3.\n"),
    ],
    ids=["bare", "block"],
)
def test_postinst_fails(stderr: str) -> None:
    outcome = summarize(255, ["Configuring failpkg."], stderr)
    assert outcome.code == SCRIPT_FAILED
    assert outcome.failures == {"failpkg": SCRIPT_FAILED}
    assert [(e.code, e.package) for e in outcome.errors] == [(SCRIPT_FAILED, "failpkg")] * 2


def test_one_good_and_one_unknown() -> None:
    stdout = [*INSTALL_OK, "Unknown package 'nosuchpkg'."]
    stderr = "Collected errors:\n * opkg_install_cmd: Cannot install package nosuchpkg.\n"
    outcome = summarize(255, stdout, stderr)
    assert outcome.code == UNKNOWN_PACKAGE
    assert outcome.failures == {"nosuchpkg": UNKNOWN_PACKAGE}


def test_modified_conffile_on_reinstall_is_success() -> None:
    stderr = (
        "Collected errors:\n"
        " * resolve_conffiles: Existing conffile /etc/config/myapp is different from the "
        "conffile in the new package. The new conffile will be placed at /etc/config/myapp-opkg.\n"
    )
    outcome = summarize(0, INSTALL_OK[:2] + ["Configuring myapp."], stderr)
    assert outcome.ok and outcome.code is None and outcome.failures == {}
    assert [error.code for error in outcome.errors] == [None]
    assert outcome.message.startswith("opkg succeeded with notices:\n * resolve_conffiles: Existing")


@pytest.mark.parametrize(
    "stdout",
    [
        ["Removing package myapp from root..."],
        ["Removing package myapp from root...",
         "mylib was autoinstalled and is now orphaned, removing.",
         "Removing package mylib from root..."],
    ],
    ids=["plain", "autoremove"],
)
def test_remove_ok(stdout: list[str]) -> None:
    assert summarize(0, stdout, "").ok


def test_remove_not_installed_is_success() -> None:
    outcome = summarize(0, ["No packages removed."], "")
    assert outcome.ok and outcome.code is None


def test_remove_with_dependents() -> None:
    outcome = summarize(255, ["No packages removed."], DEPENDENTS_BLOCK)
    assert outcome.code == HAS_DEPENDENTS
    assert outcome.failures == {"mylib": HAS_DEPENDENTS}
    assert outcome.dependents == {"mylib": ["myapp", "otherapp"]}
    assert len(outcome.errors) == 1  # the advice lines belong to the one error
    assert "--force-removal-of-dependent-packages" in outcome.errors[0].message
    assert outcome.message.startswith(
        "opkg failed (exit 255):\n * print_dependents_warning: Package mylib is depended upon by "
        "packages: myapp otherapp These might cease")


def test_remove_with_dependents_listed_inline() -> None:
    stderr = (
        "Collected errors:\n"
        " * print_dependents_warning: Package mylib is depended upon by packages: myapp, otherapp\n"
        " * print_dependents_warning: Force removal of this package with --force-depends.\n"
    )
    outcome = summarize(255, ["No packages removed."], stderr)
    assert outcome.dependents == {"mylib": ["myapp", "otherapp"]}
    assert [error.code for error in outcome.errors] == [HAS_DEPENDENTS]


def test_update_ok() -> None:
    stdout = [f"Downloading {FEED}/Packages.gz",
              "Updated list of available packages in /tmp/root/var/opkg-lists/myfeed"]
    assert summarize(0, stdout, "").ok


def test_update_with_a_failing_feed() -> None:
    url = "http://bad.example/feed/Packages.gz"
    stdout = [
        f"Downloading {FEED}/Packages.gz",
        "Updated list of available packages in /tmp/root/var/opkg-lists/good",
        f"Downloading {url}",
        f"*** Failed to download the package list from {url}",
        "",
    ]
    stderr = (
        "Collected errors:\n"
        f" * opkg_download: Failed to download {url}, wget returned 4.\n"
        " * opkg_download: Check your network settings and connectivity.\n"
        "\n"
    )
    outcome = summarize(1, stdout, stderr, feed_names={"http://bad.example/feed": "bad"})
    assert not outcome.ok
    assert outcome.code == DOWNLOAD_FAILED
    assert outcome.failures == {"bad": DOWNLOAD_FAILED}
    assert {error.code for error in outcome.errors} == {DOWNLOAD_FAILED}
    assert f"*** Failed to download the package list from {url}" in outcome.message


def test_update_with_a_failing_file_feed() -> None:
    stdout = [f"Downloading {FEED}/missing/Packages.gz",
              f"*** Failed to download the package list from {FEED}/missing/Packages.gz"]
    stderr = "copy_file: /srv/feed/missing/Packages.gz: No such file or directory.\n"
    outcome = summarize(1, stdout, stderr)
    assert outcome.code == DOWNLOAD_FAILED
    assert outcome.failures == {"missing": DOWNLOAD_FAILED}


def test_list_installed() -> None:
    stdout = ["myapp - 1.2.3-1", "mylib - 1.0-1"]
    assert [parse_progress_line(line) for line in stdout] == [None, None]
    assert summarize(0, stdout, "").ok


@pytest.mark.parametrize(
    "stdout",
    [["Package: myapp", "Version: 1.2.3-1", "Status: install user installed",
      "Installed-Time: 1700000000", ""], []],
    ids=["known", "unknown-prints-nothing"],
)
def test_status_and_info(stdout: list[str]) -> None:
    outcome = summarize(0, stdout, "")
    assert outcome.ok and outcome.errors == []


def test_lock_busy() -> None:
    stderr = ("Collected errors:\n * opkg_conf_load: Could not lock /var/lock/opkg.lock: "
              "Resource temporarily unavailable.\n")
    outcome = summarize(255, [], stderr)
    assert outcome.code == LOCK_BUSY
    assert outcome.failures == {}
    assert outcome.message == ("opkg failed (exit 255):\n * opkg_conf_load: Could not lock "
                               "/var/lock/opkg.lock: Resource temporarily unavailable.")


def test_missing_lock_dir_is_not_contention() -> None:
    stderr = ("Collected errors:\n * opkg_conf_load: Could not create lock file "
              "/tmp/root/var/lock/opkg.lock: No such file or directory.\n")
    assert summarize(255, [], stderr).code == OPKG_FAILED


# ------------------------------------------------------------- other failures


def test_bad_usage() -> None:
    outcome = summarize(1, ["usage: opkg [options...] sub-command [arguments...]"],
                        "opkg must have one sub-command argument\n")
    assert outcome.code == OPKG_FAILED
    assert outcome.message == "opkg failed (exit 1):\n * opkg must have one sub-command argument"


def test_failure_without_any_output() -> None:
    outcome = summarize(255, [], "")
    assert outcome.code == OPKG_FAILED
    assert outcome.message == "opkg failed (exit 255) without reporting an error"


def test_killed_opkg_with_unknown_package_from_stdout_only() -> None:
    outcome = summarize(-9, ["Unknown package 'nosuchpkg'."], "")
    assert outcome.code == UNKNOWN_PACKAGE
    assert outcome.message.startswith("opkg was killed by signal 9:\n * Unknown package")


def test_out_of_space_write_fails_even_with_exit_0() -> None:
    stderr = "tar: write error: No space left on device\n"
    outcome = summarize(0, ["Installing bigpkg (1.0-1) to root..."], stderr)
    assert not outcome.ok
    assert outcome.code == INSUFFICIENT_SPACE


def test_unrecognised_stderr_with_exit_0_is_a_notice() -> None:
    outcome = summarize(0, [], "something odd happened\n")
    assert outcome.ok
    assert outcome.message == "opkg succeeded with notices:\n * something odd happened"


def test_errors_merged_into_stdout_are_found() -> None:
    stdout = ["Unknown package 'nosuchpkg'.\r\n", "Collected errors:\r\n",
              " * opkg_install_cmd: Cannot install package nosuchpkg.\r\n"]
    outcome = summarize(255, stdout, "")
    assert outcome.code == UNKNOWN_PACKAGE
    assert outcome.message == (
        "opkg failed (exit 255):\n * opkg_install_cmd: Cannot install package nosuchpkg."
    )


def test_stdout_may_be_given_as_text() -> None:
    outcome = summarize(255, "Unknown package 'x'.\n", "")
    assert outcome.failures == {"x": UNKNOWN_PACKAGE}


def test_message_is_bounded() -> None:
    stderr = "Collected errors:\n" + "".join(
        f" * opkg_install_cmd: Cannot install package pkg{i}.\n" for i in range(500))
    message = summarize(255, [], stderr).message
    assert len(message) <= 2000 and message.endswith("...")


# ------------------------------------------------------------- parse_errors


def test_parse_errors_classifies_each_kind() -> None:
    stderr = (
        "Collected errors:\n"
        " * opkg_conf_load: Could not lock /var/lock/opkg.lock: Resource temporarily unavailable.\n"
        " * verify_pkg_installable: Only have 12kb available on filesystem /overlay, pkg big needs 99\n"
        " * opkg_install_pkg: Package sum sha256sum mismatch. Try 'opkg update'.\n"
        " * opkg_install_pkg: Failed to download dl. Perhaps you need to run 'opkg update'?\n"
        " * pkg_hash_check_unresolved: cannot find dependency gone for dep\n"
        " * opkg_download_cmd: Cannot find package nope.\n"
        ' * opkg_remove_pkg: not removing package "rm", prerm script failed\n'
        " * something_else: went wrong\n"
    )
    found = [(error.code, error.package) for error in parse_errors(stderr)]
    assert found == [
        (LOCK_BUSY, None),
        (INSUFFICIENT_SPACE, "big"),
        (CHECKSUM_MISMATCH, "sum"),
        (DOWNLOAD_FAILED, "dl"),
        (MISSING_DEPENDENCY, "dep"),
        (UNKNOWN_PACKAGE, "nope"),
        (SCRIPT_FAILED, "rm"),
        (OPKG_FAILED, None),
    ]


def test_continuation_lines_belong_to_the_previous_item() -> None:
    stderr = (
        "Collected errors:\n"
        " * satisfy_dependencies_for: Cannot satisfy the following dependencies for myapp:\n"
        " * \tlibgone (>= 2.0)\n"
        " * \tlibother\n"
        " * \n"
        " * opkg_install_cmd: Cannot install package myapp.\n"
    )
    errors = parse_errors(stderr)
    assert [(e.code, e.package) for e in errors] == [(MISSING_DEPENDENCY, "myapp")] * 2
    assert errors[0].related == ("libgone (>= 2.0)", "libother")
    assert errors[0].message == ("satisfy_dependencies_for: Cannot satisfy the following "
                                 "dependencies for myapp:\nlibgone (>= 2.0)\nlibother")


def test_wrapped_line_inside_the_block_continues_its_item() -> None:
    stderr = "Collected errors:\n * opkg_download: Failed to download x,\nwget returned 8.\n"
    errors = parse_errors(stderr)
    assert len(errors) == 1
    assert errors[0].message == "opkg_download: Failed to download x,\nwget returned 8."


def test_indented_bare_line_continues_the_bare_line_before() -> None:
    errors = parse_errors("wget: server returned error\n    HTTP/1.1 404 Not Found\n")
    assert len(errors) == 1 and errors[0].function == "wget"


def test_cannot_install_is_specific_only_with_a_reason() -> None:
    stderr = " * opkg_install_cmd: Cannot install package lonely.\n"
    assert parse_errors(stderr)[0].code == OPKG_FAILED
    assert parse_errors(stderr, unknown_packages=["lonely"])[0].code == UNKNOWN_PACKAGE


def test_failures_take_each_packages_most_specific_code() -> None:
    stderr = (
        "Collected errors:\n"
        " * verify_pkg_installable: Only have 1kb available on filesystem /overlay, pkg a needs 9\n"
        " * opkg_install_cmd: Cannot install package a.\n"
        " * opkg_install_cmd: Cannot install package b.\n"
    )
    outcome = summarize(255, ["Unknown package 'b'."], stderr)
    assert outcome.failures == {"a": INSUFFICIENT_SPACE, "b": UNKNOWN_PACKAGE}
    assert outcome.code == INSUFFICIENT_SPACE


def test_suggests_update() -> None:
    hint = OpkgError(DOWNLOAD_FAILED, "x", "opkg_install_pkg: Failed to download x. "
                     "Perhaps you need to run 'opkg update'?")
    assert suggests_update([hint])
    assert not suggests_update([OpkgError(OPKG_FAILED, None, "boom")])
    assert not suggests_update([])


def test_primary_code_follows_precedence() -> None:
    errors = [OpkgError(code, None, code) for code in reversed(PRECEDENCE)]
    assert primary_code(errors) == PRECEDENCE[0]
    assert primary_code([OpkgError(None, None, "notice")]) == OPKG_FAILED
    assert primary_code([OpkgError(SCRIPT_FAILED, "a", ""), OpkgError(DOWNLOAD_FAILED, "b", "")]) \
        == DOWNLOAD_FAILED
