"""The shape of the command tree: global options anywhere, conventional metavars.

- :func:`hoist_global_options`: the options of the top-level group (``-c``,
  ``-q``, ``-v``, ``--debug``, and whatever else the group declares) are
  accepted after the command too (``necrocode-artifacts ls -q``), as ``--json``
  always was. They are moved in front of the command before click parses, so
  each keeps one definition and one meaning.
- :func:`apply_metavars`: help shows ``SPEC``, ``N``, ``PATH`` and the like,
  never Python types (``<str>``, ``<list[str]>``, ``<bool>``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["GLOBAL_PANEL", "apply_metavars", "hoist_global_options"]

GLOBAL_PANEL = "Global options"
#: Options of the group that only make sense in front of every command.
END_OF_OPTIONS = "--"
_FRONT_ONLY = {"--version", "--help", "-h", "--install-completion", "--show-completion"}

#: Metavar by parameter name; the rest fall back to their type (N, PATH, TEXT).
METAVARS = {
    "spec": "SPEC",
    "task": "TASK",
    "tags": "TAG",
    "meta": "KEY=VALUE",
    "mime_type": "MIME",
    "retention_days": "DAYS",
    "output": "PATH",
    "config": "PATH",
    "since": "WHEN",
    "until": "WHEN",
    "limit": "N",
    "keep": "N",
    "version_number": "N",
    "older_than": "AGE",
    "cursor": "CURSOR",
    "ref": "REF",
    "refs": "REF",
    "source": "FILE",
    "sources": "FILE",
    "shell": "SHELL",
}
_TYPE_METAVARS = {"int": "N", "float": "NUMBER", "Path": "PATH", "str": "TEXT"}


def _walk(command: Any) -> Iterator[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _walk(sub)


def _takes_value(param: Any) -> bool:
    return not (getattr(param, "is_flag", False) or getattr(param, "count", False))


def hoist_global_options(group: Any, args: Sequence[str]) -> list[str]:
    """``args`` with the group's options moved in front of the command path.

    Values of the command's own options are skipped over (``--tag -q`` keeps
    ``-q`` as the tag), and nothing after ``--`` moves.
    """
    global_opts: dict[str, bool] = {}
    for param in group.params:
        for opt in (*param.opts, *getattr(param, "secondary_opts", ())):
            if opt not in _FRONT_ONLY and opt != "--json":
                global_opts[opt] = _takes_value(param)
    tokens = list(args)
    front: list[str] = []
    rest: list[str] = []
    command = group
    i = 0
    # The options in front of the command stay where they are.
    while i < len(tokens) and tokens[i].startswith("-") and tokens[i] != END_OF_OPTIONS:
        front.append(tokens[i])
        name = tokens[i].split("=", 1)[0]
        if global_opts.get(name) and "=" not in tokens[i] and i + 1 < len(tokens):
            front.append(tokens[i + 1])
            i += 1
        i += 1
    # The command path: a command, or a group and its subcommand.
    while i < len(tokens):
        sub = getattr(command, "commands", {}).get(tokens[i])
        if sub is None:
            break
        rest.append(tokens[i])
        command = sub
        i += 1
        if not getattr(sub, "commands", None):
            break
    own: dict[str, bool] = {}
    for param in getattr(command, "params", []):
        for opt in (*param.opts, *getattr(param, "secondary_opts", ())):
            if opt.startswith("-"):
                own[opt] = _takes_value(param)
    while i < len(tokens):
        token = tokens[i]
        if token == END_OF_OPTIONS:
            rest.extend(tokens[i:])
            break
        name = token.split("=", 1)[0]
        if name in global_opts and name not in own:
            front.append(token)
            if global_opts[name] and "=" not in token and i + 1 < len(tokens):
                front.append(tokens[i + 1])
                i += 1
        else:
            rest.append(token)
            if own.get(name) and "=" not in token and i + 1 < len(tokens):
                rest.append(tokens[i + 1])
                i += 1
        i += 1
    return front + rest


def apply_metavars(group: Any) -> None:
    """Give every parameter of the tree a conventional metavar (see the module docstring)."""
    for command in _walk(group):
        _flag_help_option(command)
        for param in getattr(command, "params", []):
            if getattr(param, "param_type_name", "") == "argument":
                _argument_metavar(param)
            elif param.metavar is None:
                if not _takes_value(param):
                    param.metavar = ""  # a flag: no value to name
                elif getattr(getattr(param, "type_descriptor", None), "is_choice", False):
                    choices = getattr(param.type_descriptor, "choices", None) or ()
                    names = (str(getattr(choice, "value", choice)) for choice in choices)
                    param.metavar = "[" + "|".join(names) + "]"
                else:
                    param.metavar = METAVARS.get(param.name or "") or _type_metavar(param)


def _flag_help_option(command: Any) -> None:
    """``--help`` is made per context by click: give the one it makes no metavar either."""
    make = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


def _type_metavar(param: Any) -> str:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    name = getattr(annotation, "__name__", "str")
    return _TYPE_METAVARS.get(name, "TEXT")


def _argument_metavar(param: Any) -> None:
    if param.metavar is None:
        param.metavar = METAVARS.get(param.name or "", (param.name or "value").upper())
    # The name column already says what it is: no "<str>" type column beside it.
    param.display_type_rich = _no_type
    # Usage as click and man pages write it: REF, [REF], TAG... (not {REF}).
    name = param.metavar
    usage = name if param.required else f"[{name}]"
    usage += "..." if param.nargs != 1 else ""
    param._usage_display_name = lambda: usage


def _no_type(ctx: Any) -> None:
    return None
