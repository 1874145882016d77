"""``RemoteArtifactStore``: the store's methods over HTTP, against ``necrocode-artifacts serve``.

Same method names, argument order and return types as
:class:`~necrocode.artifact_store.ArtifactStore`, and the same exceptions: the
server's ``{"error": {"code", ...}}`` is mapped back to the class it came from
(:mod:`.error_codes`). URIs are the service's URLs
(``{base}/artifacts/{spec}/{task}/{type}[?version=N]``). Bodies stream both
ways (httpx); downloads are re-hashed as they arrive, so a corrupted transfer
raises ``IntegrityError`` just as a corrupted file does locally.

Idempotent requests (reads, deletes, tag changes, and uploads with
``if_changed=True``, which the server makes no-ops when repeated) are retried
on transient failures with the store's :class:`~necrocode.artifact_store.RetryPolicy`;
other uploads only when the connection failed before anything was sent.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from typing_extensions import Unpack

from ..backends.base import CHUNK_SIZE, ReadStream
from ..backends.retry import RetryPolicy
from ..config import ArtifactStoreConfig, StorageQuota
from ..exceptions import ArtifactNotFoundError, IntegrityError, InvalidInputError, StorageError
from ..maintenance.export import ExportProgress
from ..maintenance.retention import CleanupReport
from ..maintenance.verify import DEFAULT_REPAIR_GRACE, RepairReport
from ..models import ArtifactMetadata, ArtifactType, StorageUsage, format_time, parse_time
from ..naming import ArtifactKey, new_generation, validate_tags
from ..pipeline.download import save_to
from ..pipeline.integrity import ArtifactProblem, ArtifactReader, VerifyReport
from ..pipeline.output_target import check_output_file
from ..pipeline.upload import (
    Content,
    UploadFlags,
    UploadOptions,
    content_chunks,
    file_content,
    options,
    upload_key,
)
from ..pipeline.upload_args import content_size, with_progress
from .error_codes import class_for
from .links import (
    ARTIFACT_PATH,
    INCLUDE_METADATA_HEADER,
    METADATA_HEADER,
    VERSION_HEADER,
    key_from_url,
)

__all__ = ["RemoteArtifactStore"]

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]
DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=300.0)
PAGE_SIZE = 1000
#: How often ``open`` looks again when the latest version was replaced under it.
MAX_READ_RACES = 5


class RemoteArtifactStore:
    """A client of the artifact service with the facade's methods.

    ``token`` is sent as ``Authorization: Bearer``. ``retry_policy`` defaults to
    the store's own defaults (3 attempts, exponential backoff with jitter).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry_policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self.retry_policy = retry_policy or RetryPolicy()

    # -- plumbing ---------------------------------------------------------------------

    @property
    def root_uri(self) -> str:
        """Every URI of this store starts with this."""
        return f"{self.base_url}{ARTIFACT_PATH}"

    @property
    def index_description(self) -> str:
        """The index is the server's: named by the server it is reached through."""
        return f"the index of the server at {self.base_url}"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> RemoteArtifactStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _path(self, uri: str) -> tuple[str, dict[str, int]]:
        """The v1 path and query of the artifact (version) ``uri`` names."""
        key, version = key_from_url(uri, (self.base_url,))
        path = f"/v1/artifacts/{key.spec_name}/{key.task_id}/{key.type.value}"
        return path, ({} if version is None else {"version": version})

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send once; transport failures become retryable ``StorageError``; errors raise."""
        try:
            response = self._client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            raise StorageError(f"{request.url}: timed out", retryable=True) from exc
        except httpx.TransportError as exc:
            raise StorageError(f"{request.url}: {exc}", retryable=True) from exc
        if response.status_code >= 400:
            if stream:
                response.read()
            response.close()
            raise _error_of(response)
        return response

    def _call(
        self, method: str, path: str, *, idempotent: bool = True, **options: Any
    ) -> httpx.Response:
        def attempt() -> httpx.Response:
            return self._send(self._client.build_request(method, path, **options))

        if not idempotent:
            return attempt()
        return self.retry_policy.call(method.lower(), path, attempt)

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return self._call(method, path, **options).json()

    # -- upload -----------------------------------------------------------------------

    def upload(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        content: Content | None = None,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        *,
        ref: str | None = None,
        **flags: Unpack[UploadFlags],
    ) -> str:
        """Store ``content``; return the artifact's URI (see ``ArtifactStore.upload``)."""
        if content is None:
            raise InvalidInputError("upload needs content")
        key = upload_key(task_id, spec_name, artifact_type, ref)
        return self._put(key, content, options(metadata, mime_type, flags)).uri

    def upload_version(
        self,
        task_id: str,
        spec_name: str,
        artifact_type: ArtifactType | str,
        content: Content,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        **flags: Unpack[UploadFlags],
    ) -> ArtifactMetadata:
        """Like :meth:`upload`; return the stored version's metadata."""
        key = upload_key(task_id, spec_name, artifact_type, None)
        return self._put(key, content, options(metadata, mime_type, flags))

    def upload_file(
        self,
        path: str | os.PathLike[str],
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        *,
        ref: str | None = None,
        metadata: dict[str, Any] | None = None,
        mime_type: str | None = None,
        **flags: Unpack[UploadFlags],
    ) -> str:
        """Store the file at ``path`` (a ``str`` here *is* a path); else as :meth:`upload`."""
        key = upload_key(task_id, spec_name, artifact_type, ref)
        return self._put(key, file_content(path), options(metadata, mime_type, flags)).uri

    def _put(self, key: ArtifactKey, content: Content, upload: UploadOptions) -> ArtifactMetadata:
        """``PUT`` one version; retried only when a replay is safe (replayable content,
        and a retry cannot store it twice: ``if_changed`` or ``if_absent``)."""
        params: dict[str, Any] = {"tag": list(validate_tags(upload.tags))}
        if upload.retention_days is not None:
            params["retention_days"] = upload.retention_days
        if not upload.if_changed:
            params["force"] = "true"
        headers = {"Content-Type": upload.mime_type or "application/octet-stream"}
        if upload.if_absent:
            headers["If-None-Match"] = "*"
        if upload.metadata is not None:
            headers["X-Artifact-Metadata"] = json.dumps(upload.metadata, allow_nan=False)
        path = f"/v1/artifacts/{key.spec_name}/{key.task_id}/{key.type.value}"
        replayable = isinstance(content, bytes | bytearray | memoryview | str | os.PathLike)

        def attempt() -> ArtifactMetadata:
            with _body(content, upload.progress) as body:
                request = self._client.build_request(
                    "PUT", path, params=params, headers=headers, content=body
                )
                return self._metadata(self._send(request).json())

        if replayable and (upload.if_changed or upload.if_absent):
            return self.retry_policy.call("upload", path, attempt)
        return attempt()

    # -- download ---------------------------------------------------------------------

    def open(self, uri: str, verify_checksum: bool | None = None) -> ArtifactReader:
        """Stream an artifact: a binary file object of its bytes, checked as they pass.

        One request: the server sends the metadata of exactly the version whose
        bytes follow (``X-Artifact-Metadata``), so a concurrent replacement can
        never pair one version's bytes with another's checksum. Metadata too big
        for a header is fetched for that version afterwards.
        """
        path, params = self._path(uri)
        for attempt in range(MAX_READ_RACES):

            def start() -> httpx.Response:
                request = self._client.build_request(
                    "GET", path, params=params, headers={INCLUDE_METADATA_HEADER: "1"}
                )
                return self._send(request, stream=True)

            response = self.retry_policy.call("open", path, start)
            try:
                meta = self._metadata_of_response(response, path)
                break
            except ArtifactNotFoundError:
                response.close()
                # That version was replaced before its metadata could be read: again.
                if params or attempt == MAX_READ_RACES - 1:
                    raise
            except BaseException:
                response.close()
                raise
        raw = ReadStream(_ResponseReader(response, uri), response.close, key=path)
        # The server sends the original bytes: nothing to decompress, all to check.
        plain = meta.with_changes(codec="none")
        return ArtifactReader(plain, raw, verify=verify_checksum is not False)

    def _metadata_of_response(self, response: httpx.Response, path: str) -> ArtifactMetadata:
        record = response.headers.get(METADATA_HEADER)
        if record is not None:
            return self._metadata(json.loads(record))
        version = int(response.headers[VERSION_HEADER])
        return self._metadata(self._json("GET", f"{path}/metadata", params={"version": version}))

    def download(self, uri: str, verify_checksum: bool | None = None) -> bytes:
        """The artifact's bytes, verified."""
        with self.open(uri, verify_checksum) as reader:
            return reader.readall()

    def iter_chunks(self, uri: str, verify_checksum: bool | None = None) -> Iterator[bytes]:
        """Yield the artifact's bytes in chunks of up to 1 MiB."""
        with self.open(uri, verify_checksum) as reader:
            yield from reader

    def download_to(
        self,
        uri: str,
        path: str | os.PathLike[str],
        verify_checksum: bool | None = None,
        progress: ProgressCallback | None = None,
    ) -> ArtifactMetadata:
        """Stream an artifact into ``path``; the file appears only once fully verified."""
        check_output_file(Path(path))
        with self.open(uri, verify_checksum) as reader:
            return save_to(reader, path, progress)

    def download_version(
        self, uri: str, version: int, verify_checksum: bool | None = None
    ) -> bytes:
        """The bytes of one version of the artifact."""
        if type(version) is not int or version < 1:
            raise InvalidInputError(f"version must be a positive integer, got {version!r}")
        key, _ = key_from_url(uri, (self.base_url,))
        return self.download(key.uri(self.root_uri, version), verify_checksum)

    # -- metadata and search ----------------------------------------------------------

    def _metadata(self, data: dict[str, Any]) -> ArtifactMetadata:
        """An ``ArtifactMetadata`` from the service's JSON (``uri``: the artifact's URL)."""
        record = dict(data)
        record["uri"] = record.pop("artifact_uri")
        record["type"] = record.pop("artifact_type")
        return ArtifactMetadata.from_dict(record)

    def get_metadata(self, uri: str) -> ArtifactMetadata:
        """Metadata of the artifact (or the version) ``uri`` names."""
        path, params = self._path(uri)
        return self._metadata(self._json("GET", f"{path}/metadata", params=params))

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names a stored artifact (or version)."""
        path, params = self._path(uri)
        try:
            self._call("HEAD", path, params=params)
        except ArtifactNotFoundError:
            return False
        return True

    def search(
        self,
        task_id: str | None = None,
        spec_name: str | None = None,
        artifact_type: ArtifactType | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        *,
        tags: Iterable[str] | None = None,
        match: str = "all",
        limit: int | None = None,
        failed: bool | None = None,
        test: str | None = None,
        touches: str | None = None,
        has_errors: bool | None = None,
        order: str | None = None,
    ) -> list[ArtifactMetadata]:
        """Artifacts (latest versions) matching every filter, in ``ArtifactStore.search``'s
        order (oldest first; newest first with a content filter), all pages."""
        params: dict[str, Any] = {"tag": list(validate_tags(tags)), "match": match}
        for name, flag in (("failed", failed), ("has_errors", has_errors)):
            if flag is not None:
                params[name] = str(flag).lower()
        for name, text in (("test", test), ("touches", touches), ("order", order)):
            if text is not None:
                params[name] = text
        for name, value in (("task_id", task_id), ("spec_name", spec_name)):
            if value is not None:
                params[name] = value
        if artifact_type is not None:
            params["artifact_type"] = str(ArtifactType.parse(artifact_type).value)
        for name, moment in (("created_after", created_after), ("created_before", created_before)):
            if moment is not None:
                if not isinstance(moment, datetime) or moment.tzinfo is None:
                    raise InvalidInputError(f"{name} must be a timezone-aware datetime")
                params[name] = format_time(moment)
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer, got {limit!r}")
        found: list[ArtifactMetadata] = []
        cursor: str | None = None
        while True:
            wanted = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(found))
            page_params = params | {"limit": wanted}
            if cursor is not None:
                page_params["cursor"] = cursor
            page = self._json("GET", "/v1/artifacts", params=page_params)
            found += [self._metadata(item) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None or (limit is not None and len(found) >= limit):
                return found

    def get_by_task_id(self, task_id: str, spec_name: str | None = None) -> list[ArtifactMetadata]:
        """Metadata of every artifact of a task."""
        return self.search(task_id=task_id, spec_name=spec_name)

    def get_by_spec_name(self, spec_name: str) -> list[ArtifactMetadata]:
        """Metadata of every artifact of a spec."""
        return self.search(spec_name=spec_name)

    def search_by_tags(
        self, tags: Iterable[str], match: str = "all", **filters: Any
    ) -> list[ArtifactMetadata]:
        """Artifacts carrying all ``tags`` (``match="any"``: at least one)."""
        tag_tuple = validate_tags(tags)
        if not tag_tuple:
            raise InvalidInputError("search_by_tags needs at least one tag")
        return self.search(tags=tag_tuple, match=match, **filters)

    # -- delete -----------------------------------------------------------------------

    def delete(self, uri: str, *, missing_ok: bool = False) -> int:
        """Delete the artifact (every version) or the version ``?version=N`` names."""
        path, params = self._path(uri)
        try:
            return int(self._json("DELETE", path, params=params)["deleted"])
        except ArtifactNotFoundError:
            if missing_ok:
                return 0
            raise

    def delete_by_task_id(self, task_id: str, spec_name: str | None = None) -> int:
        """Delete every artifact of a task."""
        found = self.search(task_id=task_id, spec_name=spec_name)
        return sum(self.delete(meta.uri, missing_ok=True) for meta in found)

    def delete_by_spec_name(self, spec_name: str) -> int:
        """Delete every artifact of a spec."""
        found = self.search(spec_name=spec_name)
        return sum(self.delete(meta.uri, missing_ok=True) for meta in found)

    # -- versions, tags, pinning ------------------------------------------------------

    def get_all_versions(self, uri: str) -> list[ArtifactMetadata]:
        """Every stored version of the artifact, oldest first."""
        key, _ = key_from_url(uri, (self.base_url,))
        path, _ = self._path(key.uri(self.root_uri))
        return [self._metadata(item) for item in self._json("GET", f"{path}/versions")["items"]]

    def delete_old_versions(self, uri: str, keep: int = 1) -> int:
        """Delete all but the newest ``keep`` versions; return how many were deleted."""
        if type(keep) is not int or keep < 1:
            raise InvalidInputError(f"keep must be a positive integer, got {keep!r}")
        doomed = self.get_all_versions(uri)[:-keep]
        return sum(self.delete(meta.version_uri, missing_ok=True) for meta in doomed)

    def _tags(self, method: str, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        path, params = self._path(uri)
        tag_list = list(validate_tags(tags))
        if method == "DELETE":
            if not tag_list:
                return self.get_metadata(uri)
            params_with = {**params, "tag": tag_list}
            return self._metadata(self._json("DELETE", f"{path}/tags", params=params_with))
        body = {"tags": tag_list}
        return self._metadata(self._json(method, f"{path}/tags", params=params, json=body))

    def add_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Add ``tags`` (idempotent)."""
        return self._tags("POST", uri, tags)

    def update_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Replace the artifact's tags."""
        return self._tags("PUT", uri, tags)

    def remove_tags(self, uri: str, tags: Iterable[str]) -> ArtifactMetadata:
        """Remove ``tags`` (absent ones are ignored)."""
        return self._tags("DELETE", uri, tags)

    def pin(self, uri: str) -> ArtifactMetadata:
        """Keep the artifact (or version) forever."""
        path, params = self._path(uri)
        return self._metadata(self._json("PUT", f"{path}/pin", params=params))

    def unpin(self, uri: str) -> ArtifactMetadata:
        """Let the retention policy apply again."""
        path, params = self._path(uri)
        return self._metadata(self._json("DELETE", f"{path}/pin", params=params))

    # -- integrity and maintenance ----------------------------------------------------

    def verify_checksum(self, uri: str) -> bool:
        """Whether the artifact's bytes (as served) match their size and SHA-256."""
        try:
            with self.open(uri, verify_checksum=True) as reader:
                reader.drain()
        except IntegrityError:
            return False
        return True

    def verify_all(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """The server's check of every stored artifact version (admin scope)."""
        data = self._json("POST", "/v1/verify", idempotent=False)
        return VerifyReport(
            ok=list(data["ok"]),
            corrupted=[ArtifactProblem(**p) for p in data["corrupted"]],
            missing=[ArtifactProblem(**p) for p in data["missing"]],
            orphaned=list(data["orphaned"]),
            incomplete=list(data["incomplete"]),
            index_stale=list(data["index_stale"]),
            bytes_checked=int(data["bytes_checked"]),
        )

    def repair(self, older_than: timedelta = DEFAULT_REPAIR_GRACE) -> RepairReport:
        """Remove the leftovers of interrupted writes on the server (admin scope)."""
        seconds = int(older_than.total_seconds())
        data = self._json(
            "POST", "/v1/repair", params={"older_than_seconds": seconds}, idempotent=False
        )
        return RepairReport(
            removed_orphans=list(data["removed_orphans"]),
            removed_incomplete=list(data["removed_incomplete"]),
            skipped_busy=list(data["skipped_busy"]),
            indexed=int(data["indexed"]),
        )

    def find_expired(self, now: datetime | None = None) -> list[ArtifactMetadata]:
        """Artifact versions past their retention period at ``now`` (default: the server's now)."""
        params = {}
        if now is not None:
            if not isinstance(now, datetime) or now.tzinfo is None:
                raise InvalidInputError("now must be a timezone-aware datetime")
            params["now"] = format_time(now)
        data = self._json("GET", "/v1/expired", params=params)
        return [self._metadata(item) for item in data["items"]]

    def cleanup_expired(
        self,
        dry_run: bool = False,
        now: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> CleanupReport:
        """Delete expired artifact versions on the server (admin scope)."""
        if now is not None:
            raise InvalidInputError("a remote cleanup runs at the server's time")
        data = self._json(
            "POST", "/v1/cleanup", params={"dry_run": str(dry_run).lower()}, idempotent=False
        )
        finished = data.get("finished")
        return CleanupReport(
            started_at=parse_time(data["time"]),
            dry_run=bool(data["dry_run"]),
            policy=dict(data["policy"]),
            uris=list(data["deleted"]),
            bytes_freed=int(data["bytes_freed"]),
            errors=list(data["errors"]),
            finished_at=parse_time(finished) if finished else None,
        )

    def rebuild_index(self) -> int:
        """Rebuild the server's index from the records; return the record count."""
        return int(self._json("POST", "/v1/reindex", idempotent=False)["records"])

    reindex = rebuild_index

    # -- usage and export -------------------------------------------------------------

    def _usage_report(self) -> dict[str, Any]:
        report: dict[str, Any] = self._json("GET", "/v1/usage")
        return report

    @staticmethod
    def _usage(data: dict[str, Any]) -> StorageUsage:
        return StorageUsage(
            artifact_count=int(data["artifact_count"]),
            version_count=int(data["version_count"]),
            stored_bytes=int(data["stored_bytes"]),
            original_bytes=int(data["original_bytes"]),
            quota_bytes=data["quota_bytes"],
        )

    @property
    def config(self) -> ArtifactStoreConfig:
        """What the server says of its configuration: the quota (the rest are defaults)."""
        quota = self._usage_report()["quota"]
        return ArtifactStoreConfig(storage_quota=StorageQuota(**quota))

    def get_storage_usage(self) -> StorageUsage:
        """Total usage of the server's store."""
        return self._usage(self._usage_report()["total"])

    def get_usage_by_spec(self) -> dict[str, StorageUsage]:
        """Usage of each spec name."""
        report = self._usage_report()["by_spec"]
        return {name: self._usage(item) for name, item in report.items()}

    def get_usage_by_type(self) -> dict[str, StorageUsage]:
        """Usage of each artifact type."""
        report = self._usage_report()["by_type"]
        return {name: self._usage(item) for name, item in report.items()}

    def export_by_spec(
        self,
        spec_name: str,
        output_path: str | os.PathLike[str] | None = None,
        progress: Callable[[ExportProgress], None] | None = None,
    ) -> Path:
        """Download the ZIP of every artifact of a spec; return its path."""
        return self._export({"spec_name": spec_name}, output_path, f"{spec_name}.zip")

    def export_by_task(
        self,
        task_id: str,
        spec_name: str | None = None,
        output_path: str | os.PathLike[str] | None = None,
        progress: Callable[[ExportProgress], None] | None = None,
    ) -> Path:
        """Download the ZIP of every artifact of a task; return its path."""
        params = {"task_id": task_id} | ({"spec_name": spec_name} if spec_name else {})
        name = f"{spec_name + '-' if spec_name else ''}{task_id}.zip"
        return self._export(params, output_path, name)

    def _export(
        self, params: dict[str, str], output_path: str | os.PathLike[str] | None, name: str
    ) -> Path:
        target = Path(output_path) if output_path is not None else Path.cwd() / name
        if target.is_dir():
            target = target / name
        tmp = target.with_name(f".{target.name}.part-{new_generation()}")
        request = self._client.build_request("GET", "/v1/export", params=params)
        response = self.retry_policy.call(
            "export", "/v1/export", lambda: self._send(request, stream=True)
        )
        try:
            with open(tmp, "wb") as out:
                for chunk in response.iter_bytes(CHUNK_SIZE):
                    out.write(chunk)
            os.replace(tmp, target)
        except httpx.TransportError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"export download failed: {exc}", retryable=True) from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            response.close()
        return target


class _ResponseReader:
    """``read(n)`` over a streamed httpx response (at most one buffered chunk)."""

    def __init__(self, response: httpx.Response, uri: str) -> None:
        self._chunks = response.iter_bytes(CHUNK_SIZE)
        self._left = memoryview(b"")
        self._uri = uri

    def __call__(self, size: int) -> bytes:
        if not self._left:
            try:
                self._left = memoryview(next(self._chunks, b""))
            except httpx.TransportError as exc:
                raise StorageError(
                    f"{self._uri}: the download was cut: {exc}", uri=self._uri, retryable=True
                ) from exc
        data, self._left = self._left[:size], self._left[size:]
        return bytes(data)


@contextlib.contextmanager
def _body(content: Content, progress: ProgressCallback | None) -> Iterator[bytes | Iterable[bytes]]:
    """The request body of ``content``: bytes as they are (a ``Content-Length`` body),
    anything else in chunks; ``progress`` follows them."""
    if progress is None and isinstance(content, str | bytes | bytearray | memoryview):
        yield content.encode("utf-8") if isinstance(content, str) else bytes(content)
        return
    chunks, close = content_chunks(content)
    try:
        yield chunks if progress is None else with_progress(chunks, content_size(content), progress)
    finally:
        close()


def _error_of(response: httpx.Response) -> Exception:
    """The store exception an error response stands for."""
    code = message = None
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    if message is None:
        message = f"HTTP {response.status_code} from {response.request.url}"
    cls = class_for(response.status_code, code)
    uri = str(response.request.url)
    if issubclass(cls, StorageError):
        retryable = response.status_code in (408, 429, 500, 502, 503, 504) and code not in (
            "integrity_error",
            "store_error",
            "config_error",
        )
        return cls(message, uri=uri, retryable=retryable)
    return cls(message, uri=uri)
