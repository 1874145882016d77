"""The metadata record of one artifact version: one schema, every layout derived from it.

:class:`ArtifactMetadata` is a ``msgspec`` Struct. Its field declarations are the
only list of fields; everything that turns a record into data is computed from
them, so a new field is one annotated line there:

- the JSON record written beside each artifact (:meth:`~ArtifactMetadata.to_json`,
  layout :data:`RECORD_SCHEMA`) and its readers (``from_json``/``from_trusted_json``);
- the public JSON (:meth:`~ArtifactMetadata.to_dict`, layout :data:`PUBLIC_SCHEMA`):
  the command line's ``--json`` and, via :func:`api_fields`, the service's API model;
- the index rows, which keep the record text beside their query columns.

msgspec was chosen by measurement (``python -m benchmarks.record_codec``): it
encodes and validates a record about ten times faster than the hand-written
serializers it replaces, and several times faster than a pydantic model; it is
imported with the first record, not at the command line's start.

Compatibility rules the layouts keep:

- a field of release 0.1.0 (:data:`LAYOUT_0_1_0`) is always written; any later
  field only when it differs from its default (``summary`` and
  ``summary_reason`` together), so a record that never used one keeps the 0.1.0
  layout byte for byte, and every record loads in the old reader (which skips
  keys it does not know);
- keys are sorted and non-ASCII text is escaped as ``json.dumps`` does, so
  records diff cleanly and re-serialise to the same bytes;
- in layout 1 ``size`` is the stored bytes and ``original_size`` the uploaded
  ones; layout 2 says ``size`` and ``stored_size`` (and keeps ``original_size``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_origin, get_type_hints

import msgspec
from msgspec import Meta

from .exceptions import IntegrityError
from .models import (
    MAX_INT64,
    MAX_RETENTION_DAYS,
    PUBLIC_SCHEMA,
    RECORD_SCHEMA,
    ArtifactType,
    Codec,
    format_time,
    parse_time,
)

if TYPE_CHECKING:  # the content parsers load with the first summary, not with this module
    from .content.summary import Summary

__all__ = ["LAYOUT_0_1_0", "ArtifactMetadata", "api_fields"]

Count = Annotated[int, Meta(ge=0, le=MAX_INT64)]
_UNSET: Any = object()
_CHECKSUM = r"\Asha256:[\s\S]{64}\Z"


class _MetadataMeta(msgspec.StructMeta):
    """Accepts the deprecated ``original_size`` keyword (see :class:`ArtifactMetadata`)."""

    def __call__(cls, *args: Any, original_size: Any = _UNSET, **kwargs: Any) -> Any:
        if original_size is not _UNSET:  # the names before the rename: size = stored bytes
            if len(args) > 8 or "stored_size" in kwargs:
                raise TypeError("give size and stored_size, or (deprecated) original_size")
            if len(args) > 4:
                stored, args = args[4], (*args[:4], original_size, *args[5:])
            elif "size" in kwargs:
                stored, kwargs["size"] = kwargs["size"], original_size
            else:
                raise TypeError("ArtifactMetadata needs size")
            kwargs["stored_size"] = stored
        return super().__call__(*args, **kwargs)


class ArtifactMetadata(msgspec.Struct, frozen=True, metaclass=_MetadataMeta):
    """Everything the store knows about one version of one artifact.

    One vocabulary everywhere: ``size`` is the number of bytes that were
    uploaded (the original), ``stored_size`` the bytes the backend holds (after
    compression); ``checksum`` (``sha256:<hex>``) describes the uploaded bytes.
    ``object_key`` is where the stored bytes live inside the backend.
    ``summary`` is what the store understood of the content (failed tests,
    changed files, log errors); ``None`` with ``summary_reason`` when the content
    did not parse, ``None`` with no reason when it was never summarised.

    ``original_size`` is a deprecated alias of ``size``. Code written before
    the rename, which constructs ``ArtifactMetadata(size=<stored>,
    original_size=<original>)``, still builds the right object: given
    ``original_size``, ``size`` is read in its old meaning (stored bytes).

    The annotations are the schema: their constraints are checked when a record
    is read, their descriptions document the service's API.
    """

    uri: Annotated[str, Meta(description="the artifact's URI (without ?version=)")]
    task_id: str
    spec_name: str
    type: ArtifactType
    size: Annotated[int, Meta(ge=0, le=MAX_INT64, description="bytes uploaded (the original)")]
    checksum: Annotated[
        str, Meta(pattern=_CHECKSUM, description="sha256:<hex> of the uploaded bytes")
    ]
    created_at: Annotated[datetime, Meta(description="ISO 8601, UTC")]
    compressed: bool
    stored_size: Annotated[
        int, Meta(ge=0, le=MAX_INT64, description="bytes stored (after compression)")
    ]
    mime_type: str
    tags: tuple[str, ...] = ()
    version: Annotated[int, Meta(ge=1, le=MAX_INT64)] = 1
    metadata: Annotated[
        dict[str, Any], Meta(description="custom metadata (the uploader's extra keys)")
    ] = {}
    codec: Codec = "none"
    object_key: Annotated[str, Meta(description="where the bytes live inside the backend")] = ""
    retention_days: Annotated[
        int | None, Meta(description="per-artifact retention (null: the type's period)")
    ] = None
    pinned: bool = False
    summary: Annotated[
        Summary | None,
        Meta(description="what the store understood of the content (see insights)"),
    ] = None
    summary_reason: Annotated[
        str | None, Meta(description="why there is no summary, when there is none")
    ] = None

    @property
    def original_size(self) -> int:
        """Deprecated alias of :attr:`size` (the bytes uploaded)."""
        return self.size

    @property
    def version_uri(self) -> str:
        """The URI of exactly this version (``<uri>?version=<n>``)."""
        return f"{self.uri}?version={self.version}"

    def with_changes(self, **changes: Any) -> ArtifactMetadata:
        """A copy with the given fields replaced."""
        try:
            return msgspec.structs.replace(self, **changes)
        except (TypeError, ValueError) as exc:
            raise TypeError(str(exc)) from None

    # -- writing ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The public JSON-ready dict (layout :data:`PUBLIC_SCHEMA`).

        :meth:`from_dict` restores an equal object. ``original_size`` repeats
        ``size`` for readers of layout 1.
        """
        return _plain(self, PUBLIC_SCHEMA)

    def to_json(self) -> str:
        """The stored record as compact JSON text (keys sorted, so records diff cleanly)."""
        data = _plain(self, RECORD_SCHEMA)
        raw = _encoder().encode(data)
        if raw.isascii() and b"\x7f" not in raw and not _odd_floats(data):
            return raw.decode("ascii")
        # What msgspec spells differently from json.dumps: escapes and exponents.
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    # -- reading ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any) -> ArtifactMetadata:
        """Build from :meth:`to_dict` output (or a record); malformed raises ``IntegrityError``."""
        return _read(data, trusted=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactMetadata:
        """Parse a record written by :meth:`to_json`."""
        return _decode(text, trusted=False)

    @classmethod
    def from_trusted_json(cls, text: str | bytes) -> ArtifactMetadata:
        """Parse JSON that this library wrote from an already validated record.

        For the search index's rows. The record's own fields are checked as
        :meth:`from_json` does (that costs little now); its summary is read
        without the parsers' field checks, which :meth:`from_json` repeats
        should anything be unexpected.
        """
        return _decode(text, trusted=True)


#: The fields of release 0.1.0's records: always written. Any later field is
#: written only when set, so records that do not use it keep that layout.
LAYOUT_0_1_0 = frozenset(
    [
        "uri",
        "task_id",
        "spec_name",
        "type",
        "size",
        "checksum",
        "created_at",
        "compressed",
        "stored_size",
        "mime_type",
        "tags",
        "version",
        "metadata",
        "codec",
        "object_key",
        "retention_days",
        "pinned",
    ]
)
#: Later fields that appear together (a summary says why it is missing).
_GROUPS: tuple[tuple[str, ...], ...] = (("summary", "summary_reason"),)
#: ``(field, key)`` where a field's key in a layout is not its name (layout 1 counted
#: stored bytes as ``size``).
_KEYS: dict[int, tuple[tuple[str, str], ...]] = {
    RECORD_SCHEMA: (("size", "original_size"), ("stored_size", "size")),
    PUBLIC_SCHEMA: (),
}
_FIELDS: tuple[str, ...] = ArtifactMetadata.__struct_fields__
_DEFAULTS: dict[str, Any] = dict(
    zip(_FIELDS[len(_FIELDS) - len(ArtifactMetadata.__struct_defaults__) :],
        ArtifactMetadata.__struct_defaults__, strict=True)
)  # fmt: skip
_GROUPED = {name for group in _GROUPS for name in group}
#: The later fields, each with those it appears together with.
_LATER = (*_GROUPS, *((n,) for n in _FIELDS if n not in LAYOUT_0_1_0 and n not in _GROUPED))


def _plain(meta: ArtifactMetadata, layout: int) -> dict[str, Any]:
    """``meta`` as JSON-ready data in ``layout``.

    msgspec turns enums and the custom metadata into JSON values; times and
    summaries keep this library's own spelling, tuples become lists.
    """
    summary, plain = meta.summary, meta
    if summary is not None:  # written below; msgspec would spell its fields for nothing
        plain = msgspec.structs.replace(meta, summary=None)
    data: dict[str, Any] = msgspec.to_builtins(plain, builtin_types=_OWN_SPELLING)
    for name in _times():
        data[name] = format_time(getattr(meta, name))
    for name in _arrays():
        data[name] = list(data[name])
    for group in _LATER:
        for name in group:
            if getattr(meta, name) != _DEFAULTS[name]:
                break
        else:  # none of them set: the keys stay out (see LAYOUT_0_1_0)
            for name in group:
                del data[name]
    if summary is not None:
        data["summary"] = summary.to_dict()
    data.update([(key, data.pop(name)) for name, key in _KEYS[layout]])
    data["schema"] = layout
    if layout == PUBLIC_SCHEMA:
        data["original_size"] = meta.size
    return data


#: Values msgspec leaves alone when it makes plain data: this module spells them.
_OWN_SPELLING = (datetime,)


@cache
def _arrays() -> tuple[str, ...]:
    """The fields holding a tuple, a list in plain data (msgspec keeps tuples as they are)."""
    return tuple(name for name, hint in _hints().items() if get_origin(_bare(hint)) is tuple)


@cache
def _times() -> tuple[str, ...]:
    """The fields holding a time (written by :func:`~.models.format_time`)."""
    return tuple(name for name, hint in _hints().items() if _bare(hint) is datetime)


def _odd_floats(data: dict[str, Any]) -> bool:
    """Whether the free-form parts of ``data`` hold a float that msgspec and
    ``json.dumps`` spell differently (with an exponent: below 1e-4, from 1e16)."""
    summary = data.get("summary")
    # A summary's one float is its test report's duration (see Summary.to_dict):
    # walking the files of a big diff's summary would cost more than encoding them.
    test = summary.get("test") if summary is not None else None
    return _has_odd_float(data["metadata"]) or (
        test is not None and _has_odd_float(test["duration"])
    )


def _has_odd_float(value: Any) -> bool:
    if isinstance(value, float):
        return value != 0 and not 1e-4 <= abs(value) < 1e16
    if isinstance(value, dict):
        return any(_has_odd_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_odd_float(item) for item in value)
    return False


@cache
def _encoder() -> msgspec.json.Encoder:
    return msgspec.json.Encoder(order="sorted")


# -- reading -----------------------------------------------------------------------------

#: Wire types of the fields whose values need Python to read them.
_WIRE_TYPES: dict[str, Any] = {
    "created_at": str,  # parse_time reads it, with its messages
    "summary": dict[str, Any] | None,  # Summary reads it, with its own checks
    "retention_days": Annotated[int, Meta(ge=0)] | None,  # clamped to the maximum below
}
#: In a text read as layout 1, a ``stored_size`` key says it is layout 2 after all.
_LAYOUT_2_MARK = "layout_2_stored_size"


@cache
def _hints() -> dict[str, Any]:
    """The field annotations, resolved (a summary is read through :data:`_WIRE_TYPES`)."""
    return get_type_hints(ArtifactMetadata, localns={"Summary": object}, include_extras=True)


def _bare(hint: Any) -> Any:
    """``hint`` without its ``Annotated`` constraints."""
    return hint.__origin__ if get_origin(hint) is Annotated else hint


@cache
def _wire(layout: int, summary_type: Any = None) -> type[msgspec.Struct]:
    """The Struct that reads ``layout``: the fields of :class:`ArtifactMetadata`, renamed.

    ``summary_type`` (the summary classes) reads the summary straight into them;
    without it the summary is plain data, for :func:`_summary`'s checks."""
    hints = _hints()
    wire_types = _WIRE_TYPES if summary_type is None else {**_WIRE_TYPES, "summary": summary_type}
    fields: list[Any] = []
    for name in _FIELDS:
        hint = wire_types.get(name, hints[name])
        fields.append((name, hint, _DEFAULTS[name]) if name in _DEFAULTS else (name, hint))
    fields.append(("schema", int, layout))
    rename = dict(_KEYS[layout])
    if layout == RECORD_SCHEMA:
        fields.append((_LAYOUT_2_MARK, int | None, None))
        rename[_LAYOUT_2_MARK] = "stored_size"
    return msgspec.defstruct(f"_Layout{layout}", fields, rename=rename or None)


@cache
def _record_decoder() -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(_wire(RECORD_SCHEMA))


#: The decoder of trusted texts with typed summaries, once the summary classes are
#: loaded (by the first summary read: this module does not import the content parsers).
_typed_summaries: list[msgspec.json.Decoder[Any]] = []


def _decode(text: str | bytes, trusted: bool) -> ArtifactMetadata:
    """Read a record's text: straight into layout 1, else through :func:`_read`.

    A trusted text (an index row) is first read with its summary typed: msgspec
    builds the summary's classes in C, about twice as fast as from plain data. A
    text it cannot read goes through the checked path, which names the problem."""
    if trusted and _typed_summaries:
        try:
            typed = _typed_summaries[0].decode(text)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            return _decode(text, trusted=False)
        if typed.schema == RECORD_SCHEMA and getattr(typed, _LAYOUT_2_MARK) is None:
            return _from_wire(typed, trusted, summary_read=True)
    try:
        wire = _record_decoder().decode(text)
    except msgspec.ValidationError as exc:
        data = _plain_json(text)  # another layout, or not an object: the exact reason
        if isinstance(data, dict) and data.get("schema") != RECORD_SCHEMA:
            return _read(data, trusted=trusted)
        raise IntegrityError(f"malformed metadata record: {_reason(str(exc))}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"malformed metadata record: not JSON ({exc})") from exc
    if wire.schema != RECORD_SCHEMA or getattr(wire, _LAYOUT_2_MARK) is not None:
        return _read(_plain_json(text), trusted=trusted)
    return _from_wire(wire, trusted)


def _plain_json(text: str | bytes) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None


def _read(data: Any, *, trusted: bool) -> ArtifactMetadata:
    """Build from plain data of either layout."""
    try:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        # Without a "schema" key (the service's JSON), stored_size marks layout 2.
        layout = data.get("schema", PUBLIC_SCHEMA if "stored_size" in data else RECORD_SCHEMA)
        if type(layout) is not int or layout not in (RECORD_SCHEMA, PUBLIC_SCHEMA):
            raise ValueError(f"unsupported record schema {layout!r}")
        wire = msgspec.convert(data, _wire(layout))
    except msgspec.ValidationError as exc:
        raise IntegrityError(f"malformed metadata record: {_reason(str(exc))}") from exc
    except (TypeError, ValueError) as exc:
        raise IntegrityError(f"malformed metadata record: {exc}") from exc
    return _from_wire(wire, trusted)


_CREATED_AT = _FIELDS.index("created_at")
_RETENTION = _FIELDS.index("retention_days")
_SUMMARY = _FIELDS.index("summary")


def _from_wire(wire: Any, trusted: bool, *, summary_read: bool = False) -> ArtifactMetadata:
    """The record ``wire`` holds, with the checks its wire types leave to Python
    (``summary_read``: its summary is a :class:`Summary` already)."""
    values = list(msgspec.structs.astuple(wire)[: len(_FIELDS)])
    try:
        values[_CREATED_AT] = parse_time(values[_CREATED_AT])
    except ValueError as exc:
        raise IntegrityError(f"malformed metadata record: {exc}") from exc
    retention = values[_RETENTION]
    if retention is not None and retention > MAX_RETENTION_DAYS:
        # Written before the range was checked: a retention this long means "forever"
        # either way, and the record stays readable.
        values[_RETENTION] = MAX_RETENTION_DAYS
    if values[_SUMMARY] is not None and not summary_read:
        values[_SUMMARY] = _summary(values[_SUMMARY], trusted)
    # Straight to the Struct's constructor: the values are in field order already.
    meta: ArtifactMetadata = msgspec.StructMeta.__call__(ArtifactMetadata, *values)
    return meta


def _summary(data: dict[str, Any], trusted: bool) -> Summary:
    from .content.summary import Summary  # noqa: PLC0415 - see the TYPE_CHECKING import

    if not _typed_summaries:
        _typed_summaries.append(msgspec.json.Decoder(_wire(RECORD_SCHEMA, Summary | None)))
    if trusted:
        try:
            return Summary.from_trusted_dict(data)
        except (KeyError, TypeError, ValueError):
            pass  # from_dict says exactly what is wrong
    return Summary.from_dict(data)


_MESSAGE = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?(?P<rest>.*)")


def _reason(message: str) -> str:
    """msgspec's validation error as this library words it: ``<key>: <what is wrong>``."""
    match = _MESSAGE.fullmatch(message)
    what, path = (match["what"], (match["path"] or "").lstrip(".")) if match else (message, "")
    if what.startswith("Object missing required field"):
        return f"missing field '{what.split('`')[1]}'"
    key = re.sub(r"\[\d+\]$", "", path)
    if key == "tags" and path != key:
        return "tags: every tag must be a string"
    if what.startswith("Invalid enum value"):
        value = what.removeprefix("Invalid enum value ")
        if key == "type":
            known = ", ".join(t.value for t in ArtifactType)
            return f"type: unknown artifact type {value}; expected one of: {known}"
        return f"{key}: unknown {key} {value}"
    if key == "checksum" and "matching regex" in what:
        return "checksum: expected 'sha256:<64 hex digits>'"
    expected = _EXPECTED.fullmatch(what)
    if expected:
        want, got = (_python_names(expected[part]) for part in ("want", "got"))
        reason = f"expected {want}, got {got}" if got else f"must be{expected['rest']}"
        return f"{key}: {reason}" if key else reason
    return f"{key}: {what}" if key else what


def _python_names(json_types: str | None) -> str | None:
    """``object | null`` -> ``dict | null``: the type names of this library's messages."""
    if json_types is None:
        return None
    return re.sub(r"\b(object|array)\b", lambda m: _PYTHON[m[1]], json_types)


_PYTHON = {"object": "dict", "array": "list"}


# -- the service's API model -------------------------------------------------------------


def api_fields() -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """``(key, JSON type, pydantic Field arguments)`` of each key of the public layout.

    For the service's API model, which adds its own URLs. The object key is
    internal, so it is left out. A key of release 0.1.0 is required; a later one
    defaults to ``None`` (absent until set).
    """
    hints = _hints()
    for name in _FIELDS:
        if name == "object_key":
            continue
        hint = hints[name]
        options: dict[str, Any] = {"default": ... if name in LAYOUT_0_1_0 else None}
        for meta in getattr(hint, "__metadata__", ()):
            options.update(
                {k: value for k in _API_OPTIONS if (value := getattr(meta, k)) is not None}
            )
        yield name, _JSON_TYPES.get(name, _bare(hint)), options
        if name == "stored_size":
            yield "original_size", int, {"default": ..., "ge": 0, "description": _ALIAS}


_API_OPTIONS = ("ge", "le", "description")
_ALIAS = "the same as size (kept for older clients)"
#: JSON types of the fields whose attribute type is not JSON.
_JSON_TYPES: dict[str, Any] = {
    "type": Literal.__getitem__(tuple(t.value for t in ArtifactType)),
    "created_at": str,
    "tags": list[str],
    "summary": dict[str, Any] | None,
}
