"""Parse the reference's `run` command line (as cobra/pflag would) into RunFlags.

pflag rules that matter: `--name value` and `--name=value`; a boolean flag takes no
separate value (`--summarize-trace`, or `--summarize-trace=false`); a value may start
with '-' (`--horizon -1`); numbers use Go's strconv syntax; a float list is split on
commas, and a repeated list flag appends; `--` ends the flags; non-flag words are
ignored. Help (-h/--help) is for the caller to handle before calling this.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Sequence

from blis_sweep.errors import BlisError
from blis_sweep.go.format import go_quote
from blis_sweep.go.strconv import parse_bool, parse_float, parse_int
from blis_sweep.reference.args import RunFlags

_FIELD_TYPES = {f.name: str(f.type) for f in fields(RunFlags) if f.name != "explicit"}


def _convert(name: str, text: str):
    kind = _FIELD_TYPES[name]
    if kind == "int":
        return parse_int(text)
    if kind == "float":
        return parse_float(text)
    if kind == "bool":
        return parse_bool(text)
    if kind.startswith("tuple"):
        return tuple(parse_float(part) for part in text.split(","))
    return text


def parse_run_argv(argv: Sequence[str]) -> RunFlags:
    """Flags after `run` -> RunFlags with `explicit` set; bad input raises BlisError
    with pflag's wording (e.g. `unknown flag: --foo`)."""
    values: dict = {}
    explicit: set[str] = set()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        if not arg.startswith("--"):
            raise BlisError(f"unknown shorthand flag: {arg[1]!r} in {arg}")
        name, has_value, value = arg[2:].partition("=")
        if name == "" or name.startswith("-") or name.startswith("="):
            raise BlisError(f"bad flag syntax: {arg}")
        attr = name.replace("-", "_")
        if attr not in _FIELD_TYPES or "_" in name:
            raise BlisError(f"unknown flag: --{name}")
        if not has_value:
            if _FIELD_TYPES[attr] == "bool":
                value = "true"
            elif args:
                value = args.pop(0)
            else:
                raise BlisError(f"flag needs an argument: --{name}")
        try:
            parsed = _convert(attr, value)
        except ValueError as exc:
            raise BlisError(f"invalid argument {go_quote(value)} for {go_quote('--' + name)} flag: {exc}") from None
        if _FIELD_TYPES[attr].startswith("tuple") and name in explicit:
            parsed = values[attr] + parsed  # a repeated list flag appends after the first use
        values[attr] = parsed
        explicit.add(name)
    return RunFlags(**values, explicit=explicit)
