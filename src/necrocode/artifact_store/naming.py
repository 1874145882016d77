"""Names, keys and URIs: what may be stored where. No I/O here.

Spec names, task ids and tags come from other programs, so they are checked
before anything touches storage (DESIGN invariant 5). A valid name is 1-255
bytes of ASCII letters, digits, ``.``, ``_`` and ``-``, and does not start with
``.`` (so ``..`` and hidden files are impossible and names never contain ``/``).

Backend keys, relative to the store's root::

    <spec>/<task>/<file>.v<version:06d>.meta.json           the metadata record
    <spec>/<task>/<file>.v<version:06d>.<generation>.<ext>  the stored bytes

``<file>`` is the artifact type's file name (``diff.txt``, ``log.txt``,
``test-result.json``), ``<generation>`` is 16 random hex digits so that two
writers never share an object, and ``<ext>`` names the codec (``gz``, ``zst``
or ``raw``). URIs name the artifact, not the object:
``<backend root>/<spec>/<task>/<file>``, and ``...?version=<n>`` for one version.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

from .exceptions import InvalidNameError, InvalidURIError
from .models import MAX_INT64, ArtifactType, Codec

__all__ = [
    "MAX_NAME_BYTES",
    "ArtifactKey",
    "KeyKind",
    "ParsedKey",
    "new_generation",
    "parse_key",
    "validate_name",
    "validate_tag",
    "validate_tags",
]

MAX_NAME_BYTES = 255
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_EXTENSIONS: dict[Codec, str] = {"gzip": "gz", "zstd": "zst", "none": "raw"}
_CODECS_BY_EXTENSION = {ext: codec for codec, ext in _EXTENSIONS.items()}
_FILES = "|".join(re.escape(t.filename) for t in ArtifactType)
#: ``ArtifactType.from_filename`` as one dict lookup (it walks the enum): every URI
#: and backend key parsed goes through it.
_TYPES_BY_FILE = {t.filename: t for t in ArtifactType}
_KEY = re.compile(
    rf"(?P<spec>[^/]+)/(?P<task>[^/]+)/(?P<file>{_FILES})\.v(?P<version>\d{{6,19}})\."
    r"(?:(?P<meta>meta\.json)|(?P<generation>[0-9a-f]{16})\.(?P<ext>gz|zst|raw))"
)
_VERSION_QUERY = re.compile(r"version=(?P<version>[1-9]\d{0,18})")


def validate_name(field: str, value: object) -> str:
    """Return ``value`` if it is a safe name for ``field``; raise ``InvalidNameError``."""
    if not isinstance(value, str):
        raise InvalidNameError(
            f"{field} must be a string, got {type(value).__name__}", field=field, value=repr(value)
        )
    reason = _name_problem(value)
    if reason is not None:
        raise InvalidNameError(f"invalid {field} {value!r}: {reason}", field=field, value=value)
    return value


def _name_problem(value: str) -> str | None:
    if len(value) <= MAX_NAME_BYTES and _NAME.fullmatch(value) is not None:
        return None  # the common case, decided by one match: ASCII, so chars == bytes
    if not value:
        return "must not be empty"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"longer than {MAX_NAME_BYTES} bytes"
    if "\x00" in value:
        return "contains a NUL character"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "contains a control character"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if value in (".", ".."):
        return "is a relative path component"
    if value.startswith("."):
        return "must not start with '.'"
    if _NAME.fullmatch(value) is None:
        return "may only contain ASCII letters, digits, '.', '_' and '-'"
    return None


def new_generation() -> str:
    """A fresh 64-bit random id that makes every stored object's key unique."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True, order=True)
class ArtifactKey:
    """The identity of an artifact: spec name, task id and type."""

    spec_name: str
    task_id: str
    type: ArtifactType

    @classmethod
    def of(cls, spec_name: str, task_id: str, artifact_type: ArtifactType | str) -> ArtifactKey:
        """Validate the parts and build the key."""
        try:
            kind = ArtifactType.parse(artifact_type)
        except ValueError as exc:
            raise InvalidNameError(str(exc), field="artifact_type") from None
        return cls(validate_name("spec_name", spec_name), validate_name("task_id", task_id), kind)

    @property
    def folder(self) -> str:
        """``<spec>/<task>``: the backend prefix of the task's folder."""
        return f"{self.spec_name}/{self.task_id}"

    @property
    def path(self) -> str:
        """``<spec>/<task>/<file>``: the logical path the URI shows."""
        return f"{self.folder}/{self.type.filename}"

    @property
    def prefix(self) -> str:
        """The backend prefix shared by every record and object of this artifact."""
        return f"{self.path}.v"

    def record_key(self, version: int) -> str:
        """Where the metadata record of ``version`` lives."""
        return f"{self.path}.v{version:06d}.meta.json"

    def object_key(self, version: int, generation: str, codec: Codec) -> str:
        """Where the stored bytes of one write live."""
        return f"{self.path}.v{version:06d}.{generation}.{_EXTENSIONS[codec]}"

    def uri(self, root: str, version: int | None = None) -> str:
        """The artifact's URI under the backend ``root``; pinned to ``version`` if given."""
        base = f"{root.rstrip('/')}/{self.path}"
        return base if version is None else f"{base}?version={version}"

    @classmethod
    def from_uri(cls, uri: str, root: str) -> tuple[ArtifactKey, int | None]:
        """Parse a URI of this store into its key and optional version."""
        if not isinstance(uri, str):
            raise InvalidURIError(f"a URI must be a string, got {type(uri).__name__}")
        base, _, query = uri.partition("?")
        version: int | None = None
        if query:
            match = _VERSION_QUERY.fullmatch(query)
            if match is None:
                raise InvalidURIError(
                    f"bad URI query {query!r}: expected 'version=<n>' with 1 <= n <= {MAX_INT64}",
                    uri=uri,
                )
            version = int(match["version"])
            if version > MAX_INT64:
                raise InvalidURIError(
                    f"bad URI query {query!r}: version must be <= {MAX_INT64}", uri=uri
                )
        prefix = root.rstrip("/") + "/"
        if not base.startswith(prefix):
            raise InvalidURIError(f"URI {uri!r} is not inside this store ({root})", uri=uri)
        parts = base[len(prefix) :].split("/")
        if len(parts) != 3:
            raise InvalidURIError(
                f"URI {uri!r} does not have the form {prefix}<spec>/<task>/<file>", uri=uri
            )
        spec, task, filename = parts
        kind = _TYPES_BY_FILE.get(filename)
        if kind is None:
            names = ", ".join(t.filename for t in ArtifactType)
            raise InvalidURIError(
                f"URI {uri!r} names file {filename!r}; expected one of: {names}", uri=uri
            )
        return cls(validate_name("spec_name", spec), validate_name("task_id", task), kind), version


KeyKind = Literal["record", "object"]


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A backend key split into its parts (see the module docstring)."""

    artifact: ArtifactKey
    version: int
    kind: KeyKind
    generation: str | None = None
    codec: Codec | None = None


def parse_key(key: str) -> ParsedKey | None:
    """Split a backend key of a record or object; ``None`` for anything else."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    spec, task = match["spec"], match["task"]
    if _name_problem(spec) is not None or _name_problem(task) is not None:
        return None
    artifact = ArtifactKey(spec, task, _TYPES_BY_FILE[match["file"]])
    version = int(match["version"])
    if not 1 <= version <= MAX_INT64:
        return None
    if match["meta"]:
        return ParsedKey(artifact, version, "record")
    return ParsedKey(
        artifact, version, "object", match["generation"], _CODECS_BY_EXTENSION[match["ext"]]
    )


MAX_TAG_LENGTH = 128
MAX_TAGS = 64
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:=@+-]*")


def validate_tag(tag: object) -> str:
    """Return ``tag`` if usable: 1-128 ASCII letters, digits and ``. _ : = @ + -``."""
    if not isinstance(tag, str):
        raise InvalidNameError(
            f"a tag must be a string, got {type(tag).__name__}", field="tag", value=repr(tag)
        )
    if not tag or len(tag) > MAX_TAG_LENGTH or _TAG.fullmatch(tag) is None:
        raise InvalidNameError(
            f"invalid tag {tag!r}: expected 1-{MAX_TAG_LENGTH} characters of ASCII letters, "
            "digits and '. _ : = @ + -', not starting with a punctuation mark",
            field="tag",
            value=tag,
        )
    return tag


def validate_tags(tags: object, *, limit: int = MAX_TAGS) -> tuple[str, ...]:
    """Validate a collection of tags; return them de-duplicated and sorted."""
    if tags is None:
        return ()
    if isinstance(tags, str):
        tags = [tags]
    try:
        items = list(tags)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidNameError(
            f"tags must be a list of strings, got {type(tags).__name__}", field="tags"
        ) from None
    unique = tuple(sorted({validate_tag(tag) for tag in items}))
    if len(unique) > limit:
        raise InvalidNameError(f"too many tags: {len(unique)} (at most {limit})", field="tags")
    return unique
