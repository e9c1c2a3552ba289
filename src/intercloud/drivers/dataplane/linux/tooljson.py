"""An iproute2 tool's JSON answer (`ip -j`, `tc -j`: one list of objects), read as the tool
prints it and handed on one item at a time.

At 10,000 expansions `ip -d -j link show` prints 30 MB. Read whole, the agent held it three
times at once (the pipe's chunks, the joined bytes, the text decoded from them) beside the
decoded objects and the Links made from them; every new peak of the creating agent's memory
was that read (a sampler of A's VmHWM and its threads' stacks, 3,000 expansions,
2026-12-07). Read as it comes, one chunk of the text is held at a time, and each item can be
made small (`keep`) before the next is decoded.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import selectors
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# bytes asked of the pipe at a time: its whole buffer (a pipe never hands out more at once).
# 256 KiB asked was a buffer past glibc's mapping threshold (heap.py): one mmap and munmap
# for each read, ~500 for a 30 MB dump.
CHUNK = 64 * 1024
FEED = 64 * 1024  # characters gathered before decoding (an item cut short is decoded again)
UNREADABLE_WAIT_S = 1.0
_BLANK = re.compile(r"[ \t\n\r]*")


class Unreadable(ValueError):
    """The text is not one JSON list."""


class Failed(Exception):
    """The tool ended with an error; `reason` is what it printed (or its exit status)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NoAnswer(Exception):
    """The tool printed no whole answer in time (it was killed)."""


Hook = Callable[[dict[str, Any]], Any]


def items(chunks: Iterable[bytes], object_hook: Hook | None = None) -> Iterator[Any]:
    """The items of the JSON list spelt by `chunks` (UTF-8, cut anywhere), each as soon as
    it is whole. No text at all is an empty list (a tool that printed nothing); anything
    else that is not one list raises Unreadable."""
    reader = _ListReader(object_hook)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    for chunk, last in _ending(chunks):
        try:
            buf += utf8.decode(chunk, final=last)
        except UnicodeDecodeError as exc:
            raise Unreadable(f"not UTF-8: {exc.reason}") from exc
        if len(buf) < FEED and not last:
            continue  # a pipe hands out 4 KB at a time: an item cut in two is decoded twice
        whole: list[Any] = []
        buf = buf[reader.feed(buf, last, whole) :]
        yield from whole
    if reader.state not in ("done", "open") or (reader.state == "open" and buf):
        raise Unreadable("the list is cut short")


# (state, character) -> the next state, for the list's own punctuation
_PUNCTUATION = {
    ("open", "["): "first",
    ("first", "]"): "done",
    ("sep", ","): "item",
    ("sep", "]"): "done",
}


class _ListReader:
    """The place in one JSON list: open -> first -> (sep -> item)* -> done."""

    def __init__(self, object_hook: Hook | None) -> None:
        self.decoder = json.JSONDecoder(object_hook=object_hook)
        self.state = "open"

    def feed(self, text: str, last: bool, out: list[Any]) -> int:
        """Append to `out` each item that `text` holds whole; how much of `text` was read."""
        pos = 0
        while (pos := _after_blanks(text, pos)) < len(text):
            char = text[pos]
            if (self.state, char) in _PUNCTUATION:
                self.state, pos = _PUNCTUATION[self.state, char], pos + 1
            elif self.state in ("first", "item"):
                end = self._item(text, pos, last, out)
                if end is None:
                    break  # not whole yet: the next chunk brings the rest
                self.state, pos = "sep", end
            elif self.state == "open":
                raise Unreadable(f"not a JSON list: it begins with {char!r}")
            else:
                raise Unreadable(f"not a JSON list: {char!r} where {self.state!r} was due")
        return pos

    def _item(self, text: str, pos: int, last: bool, out: list[Any]) -> int | None:
        try:
            item, end = self.decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            if last:
                raise Unreadable(f"not a JSON list: {exc.msg}") from exc
            return None
        if end == len(text) and not last:
            return None  # a number might go on in the next chunk: decoded again then
        out.append(item)
        return end


def _after_blanks(text: str, pos: int) -> int:
    found = _BLANK.match(text, pos)
    return found.end() if found else pos


def _ending(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk, then b"" marked as the last."""
    for chunk in chunks:
        yield chunk, False
    yield b"", True


def read(
    argv: list[str],
    keep: Callable[[Any], T],
    *,
    timeout: float,
    object_hook: Hook | None = None,
) -> list[T]:
    """`keep(item)` for each item of the JSON list `argv` prints. Raises FileNotFoundError
    (no such tool), NoAnswer (not done after `timeout` s: killed), Failed (it exited with an
    error: what was kept is dropped) or Unreadable (what it printed is not a JSON list)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        deadline = time.monotonic() + timeout
        try:
            kept = [keep(item) for item in items(_chunks(proc, deadline), object_hook)]
        except Unreadable as exc:
            # a tool that failed cuts its output short: its exit status says so (one that
            # still prints garbage is given a second, then killed)
            code = _end(proc, min(deadline, time.monotonic() + UNREADABLE_WAIT_S))
            if code is not None and code != 0:
                raise Failed(_said(err, code)) from exc
            if time.monotonic() >= deadline:
                raise NoAnswer(f"no answer within {timeout:g} s") from exc
            raise
        except BaseException:
            _end(proc, time.monotonic())
            raise
        code = _end(proc, deadline)
        if code is None:
            raise NoAnswer(f"no answer within {timeout:g} s")
        if code != 0:
            raise Failed(_said(err, code))
        return kept


def _end(proc: subprocess.Popen[bytes], until: float) -> int | None:
    """The tool's exit status once it ends; None if it still ran at `until` (killed)."""
    try:
        code: int | None = proc.wait(max(0.0, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    assert proc.stdout is not None
    proc.stdout.close()
    return code


def _said(err: Any, code: int) -> str:
    err.seek(0)
    return err.read(4096).decode(errors="replace").strip() or f"exit {code}"


def _chunks(proc: subprocess.Popen[bytes], deadline: float) -> Iterator[bytes]:
    """What the tool prints, as it comes; ends at its end of output, or at `deadline`."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return  # killed by read(); its exit status says it did not finish
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return
            yield chunk


__all__ = ["Failed", "NoAnswer", "Unreadable", "items", "read"]
