"""``pineapple-jobs top``: a live view of the daemon's running, queued and
held jobs, with the last few finished ones.

Running jobs are followed (one ``follow`` connection each, on a thread), so
their bars move as the daemon reports progress; the job list itself is read
again every second to see jobs come and go. Ctrl-C leaves the terminal as
it was and exits 0. Piped, it prints one line per change instead.
"""
from __future__ import annotations

import argparse
import queue
import re
import shutil
import sys
import threading
import time
from typing import IO, Any

from ..api.client import JobClient
from ..api.protocol import ApiError
from .render import (
    DIM,
    ERROR,
    STATE_STYLES,
    age,
    dump_json,
    note_of,
    packages_of,
    paint,
    percent,
    progress_cell,
    table,
    use_colour,
)

ACTIVE = ["running", "queued", "held"]
FINISHED = ["succeeded", "failed", "cancelled", "interrupted"]
REFRESH = 1.0          # seconds between re-reading the job list
MIN_REDRAW = 0.1       # seconds between redraws while events pour in
MAX_FOLLOWED = 16      # follow connections at most (the daemon bounds connections)
HEADERS = ["JOB", "TYPE", "STATE", "PROGRESS", "PACKAGES", "AGE", "STEP"]

# The terminal: alternate screen and hidden cursor while top runs.
ENTER, LEAVE = "\x1b[?1049h\x1b[?25l", "\x1b[?25h\x1b[?1049l"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TOKEN = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|.")


class Board:
    """The jobs top shows: active ones (live through follow events) and the
    most recently finished."""

    def __init__(self, client: JobClient, finished: int) -> None:
        self.client = client
        self.finished_count = max(0, finished)
        self.active: dict[str, dict] = {}
        self.finished: list[dict] = []
        self.error: str | None = None
        self.events: queue.Queue = queue.Queue()
        self._followed: set[str] = set()
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the job lists again; start following new running jobs."""
        try:
            active = self.client.list(state=ACTIVE, limit=500)["jobs"]
            finished = self.client.list(state=FINISHED, limit=self.finished_count)["jobs"] \
                if self.finished_count else []
        except ApiError as exc:  # DaemonUnavailable included: keep trying, say so
            self.error = exc.message
            return
        self.error = None
        old = self.active
        self.active = {job["job_id"]: _newer(old.get(job["job_id"]), job) for job in reversed(active)}
        self.finished = finished
        for job_id, job in self.active.items():
            if job["state"] == "running":
                self._follow(job_id)

    def apply(self, event: dict) -> None:
        """Fold one follow event into the board."""
        job = self.active.get(event.get("job_id", ""))
        if job is None:
            return
        kind = event.get("event")
        if kind == "progress":
            job["progress"] = event.get("data") or {}
        elif kind == "state":
            job.update(event.get("data") or {})
        elif kind == "end":
            with self._lock:
                self._followed.discard(event["job_id"])
            final = event.get("job")
            self.active.pop(event["job_id"], None)
            if final:
                self.finished = [{**job, **final}] + [j for j in self.finished if j["job_id"] != final["job_id"]]
                self.finished = self.finished[:self.finished_count]

    def rows(self) -> tuple[list[dict], list[dict]]:
        order = {state: index for index, state in enumerate(ACTIVE)}
        active = sorted(self.active.values(), key=lambda j: (order.get(j["state"], 9), j.get("created_at") or 0))
        return active, list(self.finished)

    def _follow(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._followed or len(self._followed) >= MAX_FOLLOWED:
                return
            self._followed.add(job_id)
        thread = threading.Thread(target=self._follow_thread, args=(job_id,), daemon=True,
                                  name=f"top-follow-{job_id[:8]}")
        thread.start()

    def _follow_thread(self, job_id: str) -> None:
        try:
            for event in JobClient(self.client.path, timeout=None).follow(job_id, log=False):
                self.events.put(event)
        except ApiError:  # removed, or the daemon went away: the next refresh sees it
            pass
        finally:
            with self._lock:
                self._followed.discard(job_id)


def run_top(client: JobClient, args: argparse.Namespace) -> int:
    """Run ``pineapple-jobs top`` until Ctrl-C (exit 0)."""
    client.ping()  # an unreachable daemon is an error now (exit 3), not a blank screen
    board = Board(client, args.finished)
    out = sys.stdout
    if args.json:
        return _loop(board, lambda: dump_json(_snapshot(board), out), changes_only=True)
    if not out.isatty():
        printer = _ChangePrinter(out)
        return _loop(board, lambda: printer.show(board), changes_only=False)
    screen = _Screen(out, client.path)
    out.write(ENTER)
    out.flush()
    try:
        return _loop(board, lambda: screen.draw(board), changes_only=False)
    finally:
        out.write(LEAVE)
        out.flush()


def _loop(board: Board, show: Any, changes_only: bool) -> int:
    last: Any = None
    try:
        while True:
            board.refresh()
            deadline = time.monotonic() + REFRESH
            while True:
                current = _snapshot(board) if changes_only else None
                if not changes_only or current != last:
                    show()
                    last = current
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not _drain(board, remaining):
                    break
                time.sleep(MIN_REDRAW)  # let a burst of events collapse into one redraw
                _drain(board, 0)
    except KeyboardInterrupt:
        return 0


def _drain(board: Board, timeout: float) -> bool:
    """Apply queued events, waiting up to ``timeout`` for the first; False if none came."""
    try:
        event = board.events.get(timeout=timeout) if timeout > 0 else board.events.get_nowait()
    except queue.Empty:
        return False
    board.apply(event)
    while True:
        try:
            board.apply(board.events.get_nowait())
        except queue.Empty:
            return True


def _snapshot(board: Board) -> dict:
    active, finished = board.rows()
    keep = ("job_id", "type", "state", "progress", "error_code")
    return {"active": [{k: j.get(k) for k in keep} for j in active],
            "finished": [{k: j.get(k) for k in keep} for j in finished], "error": board.error}


class _Screen:
    """Redraws the whole view in place on a terminal."""

    def __init__(self, out: IO[str], socket_path: str) -> None:
        self.out = out
        self.colour = use_colour(out)
        self.socket_path = socket_path

    def draw(self, board: Board) -> None:
        columns, lines = shutil.get_terminal_size((100, 30))
        active, finished = board.rows()
        counts = {state: sum(1 for j in active if j["state"] == state) for state in ACTIVE}
        title = (f"pineapple-jobs top  {time.strftime('%H:%M:%S')}  {self.socket_path}  —  "
                 + ", ".join(f"{n} {state}" for state, n in counts.items()) + "  (Ctrl-C quits)")
        text = [title, ""]
        if board.error:
            text += [paint(f"daemon: {board.error}; retrying", ERROR, self.colour), ""]
        text += self._table(active, "no running or queued jobs").split("\n")
        if finished:
            text += ["", "recently finished"] + self._table(finished, "").split("\n")
        body = [line if _visible_len(line) <= columns else _cut(line, columns) for line in text[:max(1, lines - 1)]]
        self.out.write("\x1b[H" + "".join(line + "\x1b[K\n" for line in body) + "\x1b[J")
        self.out.flush()

    def _table(self, jobs: list[dict], empty: str) -> str:
        if not jobs:
            return paint(empty, DIM, self.colour)
        rows = [[j["job_id"], j.get("type", ""), j["state"], progress_cell(j, with_bar=True, width=20),
                 packages_of(j), age(j.get("created_at")), note_of(j)] for j in jobs]
        styles = [[None, None, STATE_STYLES.get(j["state"]), None, None, DIM, ERROR if j.get("error_code") else DIM]
                  for j in jobs]
        return table(rows, HEADERS, colour=self.colour, styles=styles)


class _ChangePrinter:
    """Piped: one line each time a job appears, moves or ends."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._seen: dict[str, tuple] = {}

    def show(self, board: Board) -> None:
        active, finished = board.rows()
        for job in active + finished:
            progress = job.get("progress") or {}
            key = (job["state"], progress.get("message"), round(progress.get("fraction") or 0.0, 2))
            if self._seen.get(job["job_id"]) != key:
                self._seen[job["job_id"]] = key
                detail = job.get("error_code") or f"{percent(progress.get('fraction'))} {progress.get('message', '')}"
                self.out.write(f"{job['job_id']} {job.get('type', '')} {job['state']} {detail}".rstrip() + "\n")
        self.out.flush()


def _newer(known: dict | None, listed: dict) -> dict:
    """A listed job, keeping the progress a follow event brought since (lists lag events)."""
    if known is None or known.get("state") != listed.get("state"):
        return dict(listed)
    merged = dict(listed)
    known_fraction = (known.get("progress") or {}).get("fraction") or 0.0
    if known_fraction > ((listed.get("progress") or {}).get("fraction") or 0.0):
        merged["progress"] = known["progress"]
    return merged


def _visible_len(line: str) -> int:
    return len(_ANSI.sub("", line))


def _cut(line: str, columns: int) -> str:
    """The line cut to ``columns`` visible characters (colour codes kept, then reset)."""
    out, visible = [], 0
    for token in _TOKEN.findall(line):
        if token.startswith("\x1b"):
            out.append(token)
        elif visible < columns:
            out.append(token)
            visible += 1
    return "".join(out) + "\x1b[0m"

