"""JUnit XML summarised with byte searches: what an upload's summary needs, at memory speed.

Public API::

    scan_junit(data: bytes, *, max_ids=50) -> JUnitCounts | None

A full XML parse costs three to ten times what compressing the same bytes does,
so an upload's summary does not make one when it can do without. In a
well-formed document a literal ``<`` only ever opens markup, except inside
comments, CDATA sections and processing instructions; a document with none of
those (and no DTD, so no entity other than the five predefined ones) is fully
described, for counting, by where its ``<testcase``, ``<failure``, ``<error`` and
``<skipped`` tags are. :func:`scan_junit` finds them with ``bytes.count`` and one
regular expression, reads the attributes of only the few tags it needs (the
root, the suites, the failing cases) and answers with the same counts, duration
and failing ids as :func:`~.testreport.parse_test_report`.

It answers ``None`` whenever it cannot vouch for that — a comment, CDATA, a
DTD, a non-UTF-8 encoding, invalid UTF-8, an unexpected root, a document that
does not end with its root's end tag (a truncated report), an attribute that
does not read as XML — and the caller then parses the document in full, which
also gives the precise error for a broken one. Unlike a parser it does not
check every byte: a report with, say, a stray unescaped ``<`` in a message still
gets its counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from xml.parsers import expat

__all__ = ["JUnitCounts", "scan_junit"]

# A start tag: name, attributes, and "/" if it closes itself. Attribute values may
# hold ">" but never a quote of their own kind, so this finds the tag's real end.
_START_TAG_RE = re.compile(
    rb"<([A-Za-z_:][\w.:\-]*)((?:\s+[^\s=/>]+\s*=\s*(?:\"[^\"]*\"|'[^']*'))*)\s*(/?)>"
)
_ATTRIBUTE_RE = re.compile(rb"([^\s=/>]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
# Outcome tags; the "<!"/"<?" of comments, CDATA and processing instructions; and a
# "<testcase" not followed by a space, which bytes.count(b"<testcase ") would miss.
_MARKER_RE = re.compile(rb"<(?:(failure|error|skipped)[\s/>]|[!?]|(testcase)[^ ])")
_PROLOG_RE = re.compile(rb"(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*\?>)?\s*")
_ROOT_END_RE = re.compile(rb"</(testsuites?)\s*>\s*\Z")
_TESTCASE_RE = re.compile(rb"<testcase[\s/>]")
_PLAIN_ENCODINGS = re.compile(rb"""encoding\s*=\s*["'](?!(?:utf-?8|us-ascii|ascii)["'])""", re.I)
_STATUS_OF = {b"failure": "failed", b"error": "error", b"skipped": "skipped"}
#: Looked at for the root's end tag.
_TAIL_BYTES = 64


@dataclass(slots=True)
class JUnitCounts:
    """What a summary keeps of a JUnit report."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    duration: float | None = None
    failing_ids: list[str] = field(default_factory=list)


def scan_junit(data: bytes, *, max_ids: int = 50) -> JUnitCounts | None:
    """Counts, duration and the first ``max_ids`` distinct failing ids, or ``None``
    when only a full parse can tell (see the module docstring)."""
    if not _plain_text(data):
        return None
    start = _PROLOG_RE.match(data)
    root = _START_TAG_RE.match(data, start.end() if start else 0)
    if root is None or root.group(1) not in (b"testsuites", b"testsuite"):
        return None
    if root.group(3):
        body_ok = not data[root.end() :].strip()
    else:
        end = _ROOT_END_RE.search(data, max(root.end(), len(data) - _TAIL_BYTES))
        body_ok = end is not None and end.group(1) == root.group(1)
    if not body_ok:
        return None
    try:
        return _count(data, root, max_ids)
    except _Unsure:
        return None


class _Unsure(Exception):
    """Something only a full parse can judge."""


def _plain_text(data: bytes) -> bool:
    """UTF-8 (or ASCII), the only encoding this module reads. (A DTD cannot occur:
    the root element must come right after the XML declaration.)"""
    head = data[:200]
    if b"\x00" in head[:4] or head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return False
    if b"encoding" in head and _PLAIN_ENCODINGS.search(head.split(b"?>", 1)[0]):
        return False
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _count(data: bytes, root: re.Match[bytes], max_ids: int) -> JUnitCounts:
    body = root.end()
    statuses: dict[int, str] = {}  # case start -> its outcome, for cases with outcome tags
    case_start, inside = -1, False
    irregular = False  # a "<testcase" tag not followed by a space
    for marker in _MARKER_RE.finditer(data, body):
        kind = marker.group(1)
        if kind is None:
            if marker.group(2) is None:
                raise _Unsure  # a comment, CDATA or a processing instruction
            irregular = True
            continue
        position = marker.start()
        found = data.rfind(b"<testcase", body, position)
        if found < 0:
            continue  # outside any test case: not an outcome of one
        if found != case_start:
            case_start = found
            inside = _encloses(data, found, position)
        if not inside:
            continue  # the nearest case before it ended already
        status = _STATUS_OF[kind]
        current = statuses.get(case_start, "passed")
        # A failure or error outranks a skip; the first of each kind decides.
        if current == "passed" or (current == "skipped" and status != "skipped"):
            statuses[case_start] = status
    # Counting b"<testcase " is one pass in C; the rare other spellings need the regex.
    total = len(_TESTCASE_RE.findall(data, body)) if irregular else data.count(b"<testcase ", body)
    counts = JUnitCounts()
    for status in statuses.values():
        if status == "failed":
            counts.failed += 1
        elif status == "error":
            counts.errors += 1
        else:
            counts.skipped += 1
    counts.passed = total - counts.failed - counts.errors - counts.skipped
    if counts.passed < 0:
        raise _Unsure
    counts.duration = _duration(data, root)
    counts.failing_ids = _failing_ids(data, statuses, max_ids)
    return counts


def _encloses(data: bytes, start: int, position: int) -> bool:
    """Whether the case whose start tag is at ``start`` is still open at ``position``."""
    end = data.find(b">", start, position)
    if end < 0:
        raise _Unsure
    tag = data[start:end]
    if b"'" in tag or tag.count(b'"') % 2:  # a ">" may sit inside a quoted value
        match = _START_TAG_RE.match(data, start)
        if match is None or match.group(1) != b"testcase":
            raise _Unsure
        end = match.end() - 1
    if data[end - 1] == 0x2F:  # "/>": the case closed itself
        return False
    return data.find(b"</testcase", end, position) < 0


def _attributes(data: bytes, start: int) -> dict[str, str]:
    """The attributes of the start tag at ``start``."""
    tag = _START_TAG_RE.match(data, start)
    if tag is None:
        raise _Unsure
    return _read_attributes(tag.group(2))


def _read_attributes(raw: bytes) -> dict[str, str]:
    """Raw attributes (``name="value" ...``) read as an XML parser reads them."""
    if b"&" in raw or b"\t" in raw or b"\n" in raw or b"\r" in raw:
        return _parsed_attributes(raw)  # entities and whitespace normalisation
    values: dict[str, str] = {}
    for name, double, single in _ATTRIBUTE_RE.findall(raw):
        values[name.decode()] = (double or single).decode()
    return values


def _parsed_attributes(raw: bytes) -> dict[str, str]:
    """Attributes through expat: the document has no DTD, so only the predefined
    entities and character references can occur."""
    found: dict[str, str] = {}
    parser = expat.ParserCreate()

    def start(_name: str, attributes: dict[str, str]) -> None:
        found.update(attributes)

    parser.StartElementHandler = start
    try:
        parser.Parse(b"<a" + raw + b"/>", True)
    except expat.ExpatError:
        raise _Unsure from None
    return found


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _duration(data: bytes, root: re.Match[bytes]) -> float | None:
    """The root's ``time``, else (for ``<testsuites>``) the sum of its suites' times."""
    duration = _number(_attributes(data, root.start()).get("time"))
    if duration is not None or root.group(1) != b"testsuites":
        return duration
    times: list[float] = []
    position = data.find(b"<testsuite", root.end())
    while position >= 0:
        if data[position + 10 : position + 11] in (b" ", b"\t", b"\n", b"\r", b">", b"/"):
            time = _number(_attributes(data, position).get("time"))
            if time is not None:
                times.append(time)
        position = data.find(b"<testsuite", position + 10)
    return sum(times) if times else None


def _failing_ids(data: bytes, statuses: dict[int, str], max_ids: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    for start, status in statuses.items():
        if len(ids) >= max_ids:
            break
        if status not in ("failed", "error"):
            continue
        values = _attributes(data, start)
        name = values.get("name") or "<unnamed>"
        classname = values.get("classname") or None
        case_id = f"{classname}.{name}" if classname else name
        if case_id not in seen:
            seen.add(case_id)
            ids.append(case_id)
    return ids
