"""How the CLI draws: tables with colour, the progress view, words for results."""
from __future__ import annotations

import io
import re

from pineapple.cli.main import build_parser
from pineapple.cli.render import ProgressView, describe_job, progress_cell, result_text, table, use_colour

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_coloured_tables_align_on_visible_text():
    rows = [["a-long-id", "failed"], ["b", "succeeded"]]
    styles = [[None, "1;31"], [None, "32"]]
    coloured = table(rows, ["JOB", "STATE"], colour=True, styles=styles)
    plain = table(rows, ["JOB", "STATE"])
    assert "\x1b[1;31mfailed\x1b[0m" in coloured and "\x1b[" not in plain
    assert ANSI.sub("", coloured) == plain  # colour adds codes, never moves a column


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_colour(FakeTty()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "")
    assert not use_colour(FakeTty())  # any value, even empty (no-color.org)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not use_colour(FakeTty())


def test_the_bar_comes_back_after_each_log_line(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTty()
    view = ProgressView(out)
    view.event({"event": "progress", "data": {"fraction": 0.5, "message": "downloading x"}})
    view.event({"event": "log", "line": "first\nsecond"})
    text = out.getvalue()
    assert text.endswith("\r\x1b[K[###############...............]  50% downloading x")
    assert "  | first\n  | second\n" in text  # a multi-line entry keeps its gutter
    assert view.draws == 2  # drawn, then redrawn once under the two lines
    view.event({"event": "state", "data": {"state": "failed", "progress": {"fraction": 0.5, "message": "x"}}})
    assert out.getvalue().endswith("\r\x1b[K")  # a failed job's bar goes; the summary tells
    assert view.close() is False


def test_piped_progress_is_plain_lines():
    out = io.StringIO()
    view = ProgressView(out)
    view.event({"event": "state", "data": {"state": "running", "progress": {"fraction": 0.0, "message": "go"}}})
    view.event({"event": "progress", "data": {"fraction": 0.0, "message": "go"}})  # no change: no line
    view.event({"event": "state", "data": {"state": "failed", "progress": {"fraction": 0.0, "message": "go"}}})
    assert out.getvalue() == "[running]   0% go\n[failed]\n"


def test_a_failed_jobs_summary_has_its_error_and_a_hint_not_its_last_step():
    job = {"job_id": "j1", "type": "install", "state": "failed", "error_code": "unknown_package",
           "job_error": "Unknown package 'tcpdumb': no configured feed's package list has it.\nopkg failed (exit 255):",
           "progress": {"fraction": 0.0, "message": "installing tcpdumb"},
           "result": {"installed": [], "dependencies": [], "already_present": [],
                      "failed": {"tcpdumb": "unknown_package"}, "rolled_back": [], "updated_lists": False}}
    text = describe_job(job)
    assert "installing tcpdumb" not in text and "progress:" not in text
    assert "error (unknown_package): Unknown package 'tcpdumb'" in text
    assert "hint: check the package name" in text and "pineapple-jobs update" in text
    assert "result: failed tcpdumb (unknown_package)" in text
    assert progress_cell(job, with_bar=True) == "-"


def test_results_in_words():
    assert result_text("install", {"installed": ["tcpdump"], "dependencies": ["libpcap1"], "already_present": [],
                                   "failed": {}, "rolled_back": [], "updated_lists": True}) == \
        "installed tcpdump; with dependencies libpcap1; package lists updated first"
    assert result_text("uninstall", {"removed": ["nmap"], "autoremoved": ["libstdcpp6"], "not_installed": []}) == \
        "removed nmap; with orphaned dependencies libstdcpp6"
    assert result_text("install", {"installed": [], "dependencies": [], "already_present": ["libc"], "failed": {},
                                   "rolled_back": [], "updated_lists": False}) == "already installed libc"
    assert result_text("update", {"feeds": 1, "failed_feeds": 0}) == '{"feeds": 1, "failed_feeds": 0}'
    assert result_text("install", {"surprise": 1}) == '{"surprise": 1}'  # an unknown shape stays JSON


def test_global_options_go_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["list"]).json is False and parser.parse_args(["list"]).timeout == 10.0
    assert parser.parse_args(["list", "--json"]).json is True
    assert parser.parse_args(["--json", "list"]).json is True
    after = parser.parse_args(["--socket", "/a", "fleet", "install", "x", "--broker", "h", "--json", "--socket", "/b"])
    assert (after.json, after.socket, after.fleet_action) == (True, "/b", "install")
    kept = parser.parse_args(["--socket", "/a", "--timeout", "3", "schedule", "list"])
    assert (kept.socket, kept.timeout) == ("/a", 3.0)  # not reset by the command's own defaults
    assert parser.parse_args(["status", "j1"]).command == "status"  # the old name still works
