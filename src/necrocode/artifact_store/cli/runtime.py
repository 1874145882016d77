"""Plumbing of the command line: per-invocation state, error mapping, logging, parsing.

Every command runs inside :class:`StoreGroup.main`, which turns the store's
typed errors into one line on stderr and an exit code:

- 0: success;
- 1: an operation failed (not found, integrity, storage, lock timeout, aborted);
- 2: bad usage or configuration (``InvalidInputError``, ``ConfigError``, bad options);
- 10: the configured store does not exist (see :mod:`.init`).

``--debug`` adds the traceback and the store's debug log.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from typer.core import TyperGroup

from ..exceptions import ArtifactStoreError, InvalidInputError, InvalidURIError
from ..models import ArtifactType, utc_now
from ..naming import ArtifactKey
from .init import EXIT_NO_STORE, StoreMissing, is_default_location, store_exists
from .output import Output
from .tree import apply_metavars, hoist_global_options

if TYPE_CHECKING:  # the store's modules load only once a command needs them
    from ..artifact_store import ArtifactStore
    from ..settings import ResolvedConfig

__all__ = [
    "COMPLETE_VAR",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG_NAME",
    "CliState",
    "Json",
    "Ref",
    "Spec",
    "StoreGroup",
    "Task",
    "Ver",
    "exit_code_for",
    "install_logging",
    "parse_duration",
    "parse_when",
    "resolve_ref",
    "session",
    "state_of",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PROG_NAME = "necrocode-artifacts"
#: The environment variable through which a shell asks for completions.
COMPLETE_VAR = "_NECROCODE_ARTIFACTS_COMPLETE"
LIBRARY_LOGGER = "necrocode.artifact_store"

_DURATION = re.compile(r"(?P<count>\d+)(?P<unit>[smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class CliState:
    """Global options of one invocation, and the store it opened (lazily)."""

    config_path: Path | None = None
    json: bool = False
    quiet: bool = False
    debug: bool = False
    verbose: bool = False
    #: ``--server URL`` / ``--token``: use the service there instead of a local store.
    server: str | None = None
    token: str | None = field(default=None, repr=False)
    _resolved: ResolvedConfig | None = field(default=None, repr=False)
    _store: ArtifactStore | None = field(default=None, repr=False)

    def resolved(self) -> ResolvedConfig:
        """The effective configuration (discovered once per invocation)."""
        if self._resolved is None:
            from ..settings import resolve_config  # noqa: PLC0415 - off the start-up path

            self._resolved = resolve_config(self.config_path)
        return self._resolved

    def store(self, *, create: bool = False) -> ArtifactStore:
        """The store the configuration names, opened on first use.

        Unless ``create`` (``init``, ``upload``) or the store is at the default
        location, a filesystem store that does not exist raises
        :class:`~.init.StoreMissing` rather than appearing empty.
        """
        if self._store is None:
            if self.server is not None:
                from ..service.client import RemoteArtifactStore  # noqa: PLC0415 - extra

                # Duck-typed: RemoteArtifactStore has the facade's methods and errors.
                self._store = cast("ArtifactStore", RemoteArtifactStore(self.server, self.token))
            else:
                config = self.resolved().config
                if not (create or is_default_location(config) or store_exists(config)):
                    raise StoreMissing(config.base_path)
                from ..artifact_store import ArtifactStore  # noqa: PLC0415 - off the start-up path

                self._store = ArtifactStore(config)
        return self._store

    def close(self) -> None:
        """Close the store if it was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


#: Option and argument shapes shared by many commands.
Ref = Annotated[
    str, typer.Argument(help="A URI, or <spec>/<task>/<type> (e.g. chat-app/1.1/diff).")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (schemas: docs/cli.md).")]
Spec = Annotated[str | None, typer.Option("--spec", "-s", help="Spec name.")]
Ver = Annotated[
    int | None, typer.Option("--ver", min=1, help="One version of the artifact (see 'versions').")
]
Task = Annotated[str | None, typer.Option("--task", "-t", help="Task id.")]


def state_of(ctx: typer.Context) -> CliState:
    """The :class:`CliState` that :meth:`StoreGroup.main` put at the root context."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):  # pragma: no cover - StoreGroup.main always sets it
        raise TypeError("the command must run through necrocode-artifacts")
    return state


def session(ctx: typer.Context, json_flag: bool = False) -> tuple[CliState, Output]:
    """The state and an :class:`Output`; a command's own ``--json`` adds to the global one."""
    state = state_of(ctx)
    state.json = state.json or json_flag
    return state, Output(json_mode=state.json, quiet=state.quiet)


def exit_code_for(exc: BaseException) -> int:
    """2 for what the caller got wrong, 1 for what went wrong."""
    if isinstance(exc, InvalidInputError):
        return EXIT_USAGE
    return EXIT_FAILURE


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class _CliLogHandler(logging.Handler):
    """The store's log records as ``warning: ...`` lines on stderr.

    Without ``--debug`` it drops the record the facade writes for a failing
    operation: the command reports that very error itself, once.
    """

    def __init__(self, debug: bool, verbose: bool = False) -> None:
        level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
        super().__init__(level)
        self.debug = debug

    def emit(self, record: logging.LogRecord) -> None:
        # Records come from the store, so its module is loaded by now.
        from ..artifact_store import FAILED_OPERATION  # noqa: PLC0415 - off the start-up path

        if not self.debug and hasattr(record, FAILED_OPERATION):
            return
        try:
            prefix = f"{record.levelname.lower()}: "
            origin = f"[{record.name}] " if self.debug else ""
            sys.stderr.write(f"{prefix}{origin}{_one_line(record.getMessage())}\n")
        except Exception:  # logging must never break the command
            self.handleError(record)


class StoreGroup(TyperGroup):
    """The top-level command group: owns the error handling of every command.

    It also gives the tree its conventions (:mod:`.tree`): conventional
    metavars in help, and the group's options accepted after the command too.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        state = extra.pop("obj", None) or CliState()
        apply_metavars(self)
        args = hoist_global_options(self, sys.argv[1:] if args is None else args)
        library_log = logging.getLogger(LIBRARY_LOGGER)
        saved_level = library_log.level
        code = EXIT_OK
        try:
            result = super().main(
                args,
                prog_name or PROG_NAME,
                complete_var,
                standalone_mode=False,
                obj=state,
                **extra,
            )
            code = result if isinstance(result, int) else EXIT_OK
            if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent exit 130
                _print_error("interrupted")
        except typer.Abort:
            _print_error("aborted")
            code = EXIT_FAILURE
        except StoreMissing as exc:
            code = _report(state, exc, EXIT_NO_STORE)
        except ArtifactStoreError as exc:
            code = _report(state, exc, exit_code_for(exc))
        except OSError as exc:
            # Local files the command itself reads or writes (an export target, -o PATH).
            code = _report(state, exc, EXIT_FAILURE)
        except Exception as exc:
            if _is_click_error(exc):
                code = _report_click_error(exc)
            else:  # a bug: say so in one line; --debug shows where
                hint = "" if state.debug else " (run with --debug for the traceback)"
                code = _report(state, exc, EXIT_FAILURE, f"internal error: {exc!r}{hint}")
        finally:
            state.close()
            for handler in list(library_log.handlers):
                if isinstance(handler, _CliLogHandler):
                    library_log.removeHandler(handler)
            library_log.setLevel(saved_level)
        if standalone_mode:
            sys.exit(code)
        return code


def install_logging(state: CliState) -> None:
    """Route the store's warnings (``--verbose``: and its info, ``--debug``: everything) to stderr.

    The handler is removed again by :meth:`StoreGroup.main` when the command ends.
    """
    library_log = logging.getLogger(LIBRARY_LOGGER)
    for existing in list(library_log.handlers):
        if isinstance(existing, _CliLogHandler):
            library_log.removeHandler(existing)
    library_log.addHandler(_CliLogHandler(state.debug, state.verbose))
    if state.debug:
        library_log.setLevel(logging.DEBUG)
    elif state.verbose:
        library_log.setLevel(logging.INFO)


def _is_click_error(exc: BaseException) -> bool:
    """Click's own errors (usage, bad parameter), recognised by shape.

    Typer 0.29 vendors click under a private name, so the classes differ by
    version; every click error has ``exit_code`` and ``format_message``.
    """
    return hasattr(exc, "exit_code") and callable(getattr(exc, "format_message", None))


def _report_click_error(exc: Any) -> int:
    code: int = exc.exit_code
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # the bare command: its help text, as click prints it
        return code
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None and code == EXIT_USAGE else ""
    _print_error(f"{exc.format_message()}{hint}")
    return code


def _report(state: CliState, exc: BaseException, code: int, message: str | None = None) -> int:
    if state.debug:
        traceback.print_exception(exc, file=sys.stderr)
    if message is None:
        message = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, ArtifactStoreError):
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror or exc}"
    _print_error(message)
    return code


def _print_error(message: str) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()


# -- argument parsing ----------------------------------------------------------------


def parse_duration(text: str, option: str | None = None) -> timedelta:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` -> a ``timedelta``.

    ``option`` names the option in the error message.
    """
    hint = None if option is None else f"'{option}'"
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration like 90s, 15m, 12h, 7d or 2w", param_hint=hint
        )
    try:
        return timedelta(seconds=int(match["count"]) * _UNIT_SECONDS[match["unit"]])
    except (OverflowError, ValueError):
        raise typer.BadParameter(f"{text!r} is too long a duration", param_hint=hint) from None


def parse_when(text: str) -> datetime:
    """A moment: a duration ago (``7d``) or an ISO 8601 date/time (local time if naive)."""
    if _DURATION.fullmatch(text.strip()):
        try:
            return utc_now() - parse_duration(text)
        except OverflowError:
            raise typer.BadParameter(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (7d, 12h) nor an ISO 8601 date/time "
            "(2026-11-29, 2026-11-29T10:00:00+00:00)"
        ) from None
    try:
        return moment if moment.tzinfo is not None else moment.astimezone()
    except (OverflowError, OSError, ValueError):
        raise typer.BadParameter(f"{text!r} is outside the range of local time") from None


def resolve_ref(store: ArtifactStore, ref: str, version: int | None = None) -> str:
    """A URI for ``ref``: a full URI as is, or ``<spec>/<task>/<type>[?version=N]``.

    ``<type>`` is ``diff``, ``log``, ``test`` or the stored file name
    (``diff.txt``, ``log.txt``, ``test-result.json``). ``version`` (``--ver N``)
    names one version without the shell quoting a ``?version=N`` suffix needs.
    """
    if version is not None:
        base, _, query = ref.partition("?")
        if query and query != f"version={version}":
            raise typer.BadParameter(
                f"{ref!r} already names a version; drop ?{query} or --ver", param_hint="'--ver'"
            )
        return f"{resolve_ref(store, base)}?version={version}"
    if "://" in ref:
        return ref
    path, mark, query = ref.partition("?")
    parts = path.split("/")
    if len(parts) != 3:
        raise InvalidURIError(
            f"{ref!r} is neither a URI nor <spec>/<task>/<type> (e.g. chat-app/1.1/diff)"
        )
    spec, task, kind = parts
    try:
        artifact_type: ArtifactType | str = ArtifactType.from_filename(kind)
    except ValueError:
        artifact_type = kind
    uri = ArtifactKey.of(spec, task, artifact_type).uri(store.root_uri)
    return f"{uri}{mark}{query}"
