"""``grep_output`` and ``check_for_process``, as Hak5's ``command_helpers``."""
from __future__ import annotations

import subprocess


def grep_output(command: str, grep_text: str, grep_options: str | list[str] | None = None) -> bytes:
    """The lines of ``command``'s output that ``grep grep_text`` keeps, as bytes.

    ``command`` is split on spaces and run without a shell; ``grep_options``
    is one option (``"-i"``) or a list. Both processes are waited for (Hak5's
    left the first one a zombie). A command that does not exist raises
    FileNotFoundError."""
    options = [grep_options] if isinstance(grep_options, str) else list(grep_options or ())
    producer = subprocess.Popen(command.split(), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        # Without options "--" keeps a text starting with "-" a pattern; with them the
        # text stays last, so options such as ["-e"] still take it as their argument.
        pattern = [grep_text] if options else ["--", grep_text]
        grep = subprocess.Popen(["grep", *options, *pattern], stdin=producer.stdout, stdout=subprocess.PIPE)
    except BaseException:
        producer.kill()
        producer.wait()
        raise
    finally:
        producer.stdout.close()  # grep holds the pipe now: the producer sees SIGPIPE if grep exits early
    output, _ = grep.communicate()
    producer.wait()
    return output


def check_for_process(process_name: str) -> bool:
    """True when a process named ``process_name`` runs (``pgrep``)."""
    try:
        found = subprocess.run(["pgrep", "-l", process_name], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise FileNotFoundError("check_for_process needs pgrep (busybox or procps)") from None
    return found.returncode == 0 and bool(found.stdout.strip())
