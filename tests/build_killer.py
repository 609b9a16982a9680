"""Runs `clipsearch index build` in forked children and SIGKILLs them at chosen points (the crash tests, issue 19).

It imports clipsearch once, then reads one JSON command a line from stdin and answers one JSON line on stdout::

    {"args": [...index build arguments...], "out": DIR, "kill_at": N}      the child kills itself with SIGKILL
                                                                           just before its N-th file operation
                                                                           under DIR (Python audit events: open,
                                                                           rename/replace, symlink, mkdir, remove,
                                                                           rmdir, rmtree, link)
    {"args": [...], "out": DIR, "kill_after": S}                           this process SIGKILLs the child S
                                                                           seconds after it starts the build
    {"args": [...], "out": DIR}                                            no kill: the answer lists the events

Answers: ``{"signal": 9 | null, "exit": code | null, "events": [[event, path relative to DIR], ...]}`` (events
only when nothing was killed). The child is a real build (the CLI, the real model cache, real files); only the
moment of its death is chosen.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from clipsearch.cli import app
from clipsearch.encode.models import fingerprint, resolve_model
from clipsearch.index import build  # noqa: F401 - imported before the fork, so each child starts at once

#: Audit events that touch the file system, and the argument holding the path.
FILE_EVENTS = {"open": 0, "os.rename": 0, "os.symlink": 1, "os.mkdir": 0, "os.remove": 0, "os.rmdir": 0,
               "shutil.rmtree": 0, "os.link": 1}


def child(command: dict, events_fd: int) -> None:
    out = os.path.abspath(command["out"])
    kill_at = command.get("kill_at")
    seen: list[list[str]] = []

    def hook(event: str, args: tuple) -> None:
        at = FILE_EVENTS.get(event)
        if at is None or len(args) <= at or not isinstance(args[at], (str, os.PathLike)):
            return
        path = os.path.abspath(os.fspath(args[at]))
        if not path.startswith(out + os.sep) and path != out:
            return
        seen.append([event, os.path.relpath(path, out)])
        if kill_at is not None and len(seen) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    os.dup2(2, 1)  # the build's own output must not mix into the answers on stdout
    sys.addaudithook(hook)
    code = 0
    try:
        app(["index", "build", *command["args"], "--out", out, "--quiet"], standalone_mode=False)
    except SystemExit as exc:
        code = exc.code or 0
    except BaseException:  # noqa: BLE001 - reported as the exit code
        code = 3
    os.write(events_fd, json.dumps(seen).encode())
    os._exit(code)


def main() -> None:
    fingerprint(resolve_model(None).path)  # hashed once here (cached), not in every child
    for line in sys.stdin:
        command = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            child(command, write_end)
        os.close(write_end)
        if command.get("kill_after") is not None:
            time.sleep(command["kill_after"])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        chunks = []
        while chunk := os.read(read_end, 1 << 16):
            chunks.append(chunk)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        events = json.loads(b"".join(chunks)) if chunks else []
        answer = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                  "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None, "events": events}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
