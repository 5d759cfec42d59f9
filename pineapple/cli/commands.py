"""What each ``pineapple-jobs`` command does."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from ..api.client import JobClient
from .render import (
    DIM,
    ERROR,
    STATE_STYLES,
    ProgressView,
    age,
    describe_job,
    dump_json,
    hint_for,
    note_of,
    packages_of,
    progress_cell,
    result_text,
    table,
    use_colour,
)
from .schedule import run_schedule_command
from .top import run_top

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
SHOW_LOG_LINES = 5
# Error codes that mean "you asked wrongly" (exit 2) rather than "it failed".
USAGE_CODES = frozenset(("invalid_package_name", "invalid_field", "missing_field", "unknown_action",
                         "unknown_job_type", "invalid_request", "invalid_trigger", "unknown_hook"))


def run(client: JobClient, args: argparse.Namespace) -> int:
    return COMMANDS[args.command](client, args)


# ------------------------------------------------------------------ jobs
def install(client: JobClient, args: argparse.Namespace) -> int:
    options = {"dest": args.dest, "update": args.update, **_job_options(args)}
    if args.no_atomic:
        options["atomic"] = False
    return _submitted(client, args, client.install(args.packages, **options))


def uninstall(client: JobClient, args: argparse.Namespace) -> int:
    options: dict[str, Any] = _job_options(args)
    if args.no_autoremove:
        options["autoremove"] = False
    if args.force:
        options["force"] = True
    return _submitted(client, args, client.uninstall(args.packages, **options))


def update(client: JobClient, args: argparse.Namespace) -> int:
    return _submitted(client, args, client.update(**_job_options(args)))


def _job_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"timeout": args.job_timeout, "hold": True if args.hold else None}


def restart(client: JobClient, args: argparse.Namespace) -> int:
    answer = client.restart(args.job_id)
    if not args.wait and not args.json:
        print(f"{answer['job_id']} (restart of {answer['parent_id']})")
        return EXIT_OK
    return _submitted(client, args, answer)


def hold(client: JobClient, args: argparse.Namespace) -> int:
    return _simple(args, client.hold(args.job_id), lambda a: (
        f"held {a['job_id']}" if a["held"] else a.get("message", "")), ok=lambda a: a["held"])


def release(client: JobClient, args: argparse.Namespace) -> int:
    return _simple(args, client.release(args.job_id), lambda a: (
        f"released {a['job_id']}" if a["released"] else a.get("message", "")), ok=lambda a: a["released"])


def log(client: JobClient, args: argparse.Namespace) -> int:
    try:
        page = client.log(args.job_id, offset=args.offset, limit=args.limit)
        _print_log_page(page, args)
        if not args.follow:
            return EXIT_OK
        return _follow_log(client, args, page["next_offset"])
    except KeyboardInterrupt:
        if not args.follow:
            raise
        # Also while the log so far is printed: the job goes on either way.
        return _interrupted(args.job_id, ended_line=False)


def _print_log_page(page: dict, args: argparse.Namespace) -> None:
    if args.json:
        dump_json(page)
        return
    if page["truncated"]:
        print(f"(lines before {page['offset']} are no longer kept)")
    for line in page["lines"]:
        print(line)


def _follow_log(client: JobClient, args: argparse.Namespace, offset: int, interval: float = 0.5) -> int:
    """Print new lines by absolute line number until the job is complete."""
    while True:
        summary = client.poll(args.job_id)
        page = client.log(args.job_id, offset=offset, limit=1000)
        for line in page["lines"]:
            dump_json({"line": line}) if args.json else print(line, flush=True)
        offset = page["next_offset"]
        if summary["is_complete"] and offset >= page["total"]:
            return EXIT_OK if summary["state"] == "succeeded" else EXIT_FAILED
        time.sleep(interval)


def _submitted(client: JobClient, args: argparse.Namespace, answer: dict) -> int:
    if not args.wait:
        if args.json:
            dump_json(answer)
        else:
            note = " (already queued or running: same job)" if answer.get("duplicate") else ""
            print(f"{answer['job_id']}{note}")
        return EXIT_OK
    if not args.json:
        print(f"job {answer['job_id']}", file=sys.stderr)
    return _watch(client, args, answer["job_id"])


def _interrupted(job_id: str, ended_line: bool) -> int:
    """Ctrl-C while watching a job: only the watching stops; the job is the daemon's and runs on."""
    if not ended_line:
        print(file=sys.stderr)  # off the line the terminal echoed ^C on
    print(f"job {job_id} continues; `pineapple-jobs cancel {job_id}` stops it\n"
          f"  (`pineapple-jobs follow {job_id}` watches it again)", file=sys.stderr)
    return EXIT_INTERRUPTED


def follow(client: JobClient, args: argparse.Namespace) -> int:
    client.poll(args.job_id)  # an unknown job or an unreachable daemon fails now, not after retries
    return _watch(client, args, args.job_id)


def _watch(client: JobClient, args: argparse.Namespace, job_id: str) -> int:
    view = None if args.json else ProgressView()
    try:
        final = client.wait(job_id, on_event=dump_json if view is None else view.event)
    except KeyboardInterrupt:
        return _interrupted(job_id, ended_line=view is not None and view.close())
    if view is not None:
        print(describe_job(final, colour=use_colour(sys.stdout)))
    return EXIT_OK if final.get("state") == "succeeded" else EXIT_FAILED


# --------------------------------------------------------------- queries
def show(client: JobClient, args: argparse.Namespace) -> int:
    job = client.get(args.job_id)
    if args.json:
        dump_json(job)
        return EXIT_OK
    fields = _show_fields(job)
    print(table([[label, value] for label, value, _ in fields], ["FIELD", "VALUE"], colour=use_colour(sys.stdout),
                styles=[[DIM if label else None, style] for label, _, style in fields], headers_shown=False))
    log_lines = list(job.get("log") or [])
    shown = log_lines if args.log else log_lines[-SHOW_LOG_LINES:]
    if shown:
        more = "" if args.log or len(shown) == len(log_lines) else "; --log shows every kept line"
        print(f"log (last {len(shown)} of {job.get('log_total', len(log_lines))} line(s){more}):")
        print("\n".join(f"  | {part}" for line in shown for part in str(line).split("\n")))
    return EXIT_OK


def _show_fields(job: dict) -> list[tuple[str, str, str | None]]:
    """(label, value, style) rows of `show`."""
    state = job.get("state", "")
    fields: list[tuple[str, str, str | None]] = [
        ("job", job["job_id"], None), ("type", job.get("type", ""), None), ("state", state, STATE_STYLES.get(state))]
    if packages_of(job):
        fields.append(("packages", packages_of(job), None))
    if not job.get("job_error"):
        message = (job.get("progress") or {}).get("message", "")
        fields.append(("progress", f"{progress_cell(job, with_bar=True)} {message}".rstrip(), None))
    for key, label in (("created_at", "created"), ("started_at", "started"), ("finished_at", "finished")):
        fields.append((label, _when(job.get(key)), None))
    if job.get("attempts", 1) != 1 or job.get("max_retries"):
        fields.append(("attempts", f"{job.get('attempts')} (retries allowed: {job.get('max_retries', 0)})", None))
    for key, label in (("parent_id", "restart of"), ("child_id", "restarted as")):
        if job.get(key):
            fields.append((label, job[key], None))
    if job.get("job_error"):
        first, *rest = str(job["job_error"]).split("\n")
        fields.append(("error", f"{first} ({job.get('error_code')})", ERROR))
        fields += [("", line, ERROR) for line in rest]
        hint = hint_for(job.get("error_code"))
        if hint:
            fields.append(("hint", hint, None))
    if job.get("result") not in (None, {}, []):
        fields.append(("result", result_text(job.get("type"), job["result"]), None))
    return fields


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(epoch))} ({age(epoch)} ago)"


def list_jobs(client: JobClient, args: argparse.Namespace) -> int:
    page = client.list(state=args.state, type=args.type, package=args.package, offset=args.offset, limit=args.limit)
    if args.json:
        dump_json(page)
        return EXIT_OK
    colour = use_colour(sys.stdout)
    jobs = page["jobs"]
    rows = [[j["job_id"], j["type"], j["state"], progress_cell(j, with_bar=colour), packages_of(j),
             age(j.get("created_at")), note_of(j)] for j in jobs]
    styles = [[None, None, STATE_STYLES.get(j["state"]), None, None, DIM, ERROR if j.get("error_code") else DIM]
              for j in jobs]
    print(table(rows, ["JOB", "TYPE", "STATE", "PROGRESS", "PACKAGES", "AGE", "NOTE"], colour=colour, styles=styles))
    print(f"{len(rows)} of {page['total']} job(s)")
    return EXIT_OK


def cancel(client: JobClient, args: argparse.Namespace) -> int:
    return _simple(args, client.cancel(args.job_id), lambda a: (
        f"cancel requested for {a['job_id']}" if a["cancelled"] else a.get("message", "")))


def remove(client: JobClient, args: argparse.Namespace) -> int:
    return _simple(args, client.remove(args.job_id), lambda a: f"removed {a['job_id']}")


def prune(client: JobClient, args: argparse.Namespace) -> int:
    return _simple(args, client.prune(), lambda a: f"removed {a['removed']} finished job(s)")


def ping(client: JobClient, args: argparse.Namespace) -> int:
    return _simple(args, client.ping(), lambda a: f"pong (pineapple-jobd {a['version']})")


def stats(client: JobClient, args: argparse.Namespace) -> int:
    def human(a: dict) -> str:
        jobs = ", ".join(f"{state} {n}" for state, n in a["jobs"].items() if n) or "none"
        totals = ", ".join(f"{name} {n}" for name, n in a["totals"].items())
        limits = a["limits"]
        return (f"pineapple-jobd {a['version']} pid {a['pid']}, up {a['uptime']:.0f}s, "
                f"RSS {(a['rss_kib'] or 0) / 1024:.1f} MiB, {a['workers']} workers, "
                f"{a['connections']} connection(s)\njobs: {jobs}\n"
                f"since start: {totals}\n"
                f"waiting {a['waiting']} of max_queued {limits['max_queued']}; "
                f"finished kept: {limits['max_finished']} for {limits['retention']:g}s"
                f"{_journal_line(a.get('journal'))}")
    return _simple(args, client.stats(), human)


def _journal_line(journal: dict | None) -> str:
    """A warning line when the journal is not simply working (older daemons send none)."""
    if not journal or journal.get("state") in ("ok", "off"):
        return ""
    if journal["state"] == "memory":
        return f"\njournal: IN MEMORY ONLY ({journal.get('error')}): nothing survives a restart"
    since = journal.get("failing_since")
    when = time.strftime(" since %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else ""
    return f"\njournal: FAILING{when} ({journal.get('error')}): new jobs are refused until it can be written"


def installed(client: JobClient, args: argparse.Namespace) -> int:
    answer = client.installed(args.packages)
    if args.json:
        dump_json(answer)
    else:
        print(table([[name, version or "-"] for name, version in answer.items()], ["PACKAGE", "INSTALLED"]))
    return EXIT_OK if all(answer.values()) else EXIT_FAILED


def types(client: JobClient, args: argparse.Namespace) -> int:
    catalogue = client.job_types()
    if args.json:
        dump_json(catalogue)
        return EXIT_OK
    for job_type in catalogue:
        print(f"{job_type['name']}: {job_type['description']}")
        for param, text in job_type["params"].items():
            print(f"    {param}: {text}")
    return EXIT_OK


def _simple(args: argparse.Namespace, answer: Any, human: Callable[[Any], str],
            ok: Callable[[Any], bool] = lambda answer: True) -> int:
    if args.json:
        dump_json(answer)
    else:
        print(human(answer))
    return EXIT_OK if ok(answer) else EXIT_FAILED


COMMANDS: dict[str, Callable[[JobClient, argparse.Namespace], int]] = {
    "install": install, "uninstall": uninstall, "update": update, "follow": follow,
    "show": show, "status": show, "list": list_jobs, "top": run_top, "cancel": cancel, "remove": remove, "prune": prune,
    "ping": ping, "stats": stats, "installed": installed, "types": types,
    "restart": restart, "hold": hold, "release": release, "log": log, "schedule": run_schedule_command,
}
