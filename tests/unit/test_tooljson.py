"""An iproute2 tool's JSON list read as it is printed (drivers/dataplane/linux/tooljson.py):
the items are those json.loads gives, however the text is cut; a tool that fails, hangs or
prints something else is told apart. The tool here is a real process (Python printing)."""

from __future__ import annotations

import json
import sys

import pytest

from intercloud.drivers.dataplane.linux import tooljson

ITEMS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["UP"], "mtu": 65536},
    {"ifindex": 2, "ifname": "tn\u00e9\u2713", "ifalias": "\U0001f600 caf\u00e9", "n": -1.5e3},
    [1, [2, {"x": None}]],
    12345,
    'a string with ] and , and [ and \\" inside',
    True,
]
TEXT = json.dumps(ITEMS).encode()


def cut(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(TEXT)])
def test_the_items_are_those_of_the_whole_list_however_the_text_is_cut(size):
    """Cut inside multi-byte characters, strings, numbers and between items."""
    assert list(tooljson.items(cut(TEXT, size))) == ITEMS


def test_items_are_handed_on_before_the_rest_is_read():
    """Once FEED characters are in, not at the end: memory holds a chunk, not the text."""
    first = b"[" + b", ".join(b'{"a": %d}' % i for i in range(10_000)) + b", "
    assert len(first) > tooljson.FEED
    seen = []

    def chunks():
        yield first
        seen.append("asked for more")
        yield b'{"b": 2}]'

    found = tooljson.items(chunks())
    assert next(found) == {"a": 0}
    assert seen == []
    assert list(found)[-2:] == [{"a": 9999}, {"b": 2}]


def test_the_object_hook_applies_at_every_depth():
    def upper(obj):
        return {k.upper(): v for k, v in obj.items()}

    assert list(tooljson.items([b'[{"a": {"b": 1}}]'], upper)) == [{"A": {"B": 1}}]


@pytest.mark.parametrize("raw", [b"", b"  \n", b"[]", b" [ ]\n"])
def test_nothing_or_an_empty_list_is_no_item(raw):
    assert list(tooljson.items([raw])) == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"ifname": "x"}', "begins with '{'"),
        (b"[1, 2", "cut short"),
        (b"[", "cut short"),
        (b'[{"a": 1', "not a JSON list"),
        (b"[1,,2]", "not a JSON list"),
        (b"[1 2]", "'2' where 'sep' was due"),
        (b"[1] [2]", "'\\[' where 'done' was due"),
        (b"\xff[]", "not UTF-8"),
        (b'["\xe2\x9c"]', "not UTF-8"),
    ],
)
def test_anything_else_than_one_list_is_unreadable(raw, why):
    with pytest.raises(tooljson.Unreadable, match=why):
        list(tooljson.items(cut(raw, 3)))


def tool(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_a_tool_s_list_is_read_through_keep():
    printer = f"import json, sys; sys.stdout.write(json.dumps({ITEMS!r} * 2000))"
    assert tooljson.read(tool(printer), repr, timeout=30) == [repr(i) for i in ITEMS * 2000]


def test_a_tool_that_fails_is_failed_with_what_it_said():
    script = "import sys; print('[1, 2'); sys.stderr.write('Dump was interrupted'); sys.exit(1)"
    with pytest.raises(tooljson.Failed, match="Dump was interrupted"):
        tooljson.read(tool(script), repr, timeout=30)
    with pytest.raises(tooljson.Failed, match="exit 3"):
        tooljson.read(tool("import sys; print('[]'); sys.exit(3)"), repr, timeout=30)


def test_a_tool_that_hangs_is_killed_at_the_timeout():
    script = "import sys, time; sys.stdout.write('[1,'); sys.stdout.flush(); time.sleep(60)"
    with pytest.raises(tooljson.NoAnswer, match="no answer within 0.5 s"):
        tooljson.read(tool(script), repr, timeout=0.5)


def test_a_tool_that_prints_no_list_is_unreadable_and_ends():
    with pytest.raises(tooljson.Unreadable, match="begins with 'h'"):
        tooljson.read(tool("print('hello')"), repr, timeout=30)
    # still printing garbage: stopped, not waited for
    endless = "import sys\nwhile True: sys.stdout.write('x' * 65536)"
    with pytest.raises(tooljson.Unreadable):
        tooljson.read(tool(endless), repr, timeout=30)


def test_a_missing_tool_is_file_not_found():
    with pytest.raises(FileNotFoundError):
        tooljson.read(["/nonexistent/ip", "-j", "link"], repr, timeout=30)


def test_an_error_while_keeping_ends_the_tool_and_goes_up():
    def keep(item):
        raise KeyError("bad item")

    endless = "import sys\nsys.stdout.write('[1')\nwhile True: sys.stdout.write(',1' * 65536)"
    with pytest.raises(KeyError, match="bad item"):
        tooljson.read(tool(endless), keep, timeout=30)
