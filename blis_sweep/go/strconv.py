"""Parse numbers and booleans with the syntax Go's strconv accepts.

The reference reads its flags (and fitness weights) with strconv, which differs from
Python's float()/int(): hex floats and base prefixes are accepted, a value too large
for float64 is an error rather than inf, and the error texts are Go's.
"""
from __future__ import annotations

import math
import re

from blis_sweep.go.format import go_quote

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+(?:\.[0-9_]*)?|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+(?:\.[0-9a-fA-F_]*)?|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")


class GoNumError(ValueError):
    """A strconv error; str() is Go's text, e.g. `strconv.ParseInt: parsing "x": invalid syntax`."""

    def __init__(self, func: str, text: str, reason: str):
        super().__init__(f"strconv.{func}: parsing {go_quote(text)}: {reason}")


def underscores_ok(s: str) -> bool:
    """Go literal rule: an underscore may only sit between digits (a base prefix counts as a digit)."""
    if s[:1] in ("+", "-"):
        s = s[1:]
    saw, i, hex_digits = "^", 0, False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hex_digits = 2, "0", s[1].lower() == "x"
    for ch in s[i:]:
        if ch.isdigit() and ch.isascii() or hex_digits and ch.lower() in "abcdef":
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _special_float(s: str) -> float | None:
    body, sign = s, 1.0
    if body[:1] in ("+", "-"):
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
        if body.lower() in ("inf", "infinity"):
            return math.copysign(math.inf, sign)
        return None  # Go takes no sign before NaN
    if body.lower() in ("inf", "infinity"):
        return math.inf
    if body.lower() == "nan":
        return math.nan
    return None


def parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64)."""
    special = _special_float(s) if s else None
    if special is not None:
        return special
    is_hex = _HEX_FLOAT.fullmatch(s) is not None
    if not (is_hex or _DEC_FLOAT.fullmatch(s)) or ("_" in s and not underscores_ok(s)):
        raise GoNumError("ParseFloat", s, "invalid syntax")
    clean = s.replace("_", "")
    try:
        value = float.fromhex(clean) if is_hex else float(clean)
    except OverflowError:
        value = math.inf
    if math.isinf(value):
        raise GoNumError("ParseFloat", s, "value out of range")
    return value


def parse_int(s: str, bits: int = 64) -> int:
    """strconv.ParseInt(s, 0, bits): base from the prefix (0x, 0o, 0b, leading 0 = octal)."""
    body = s[1:] if s[:1] in ("+", "-") else s
    negative = s[:1] == "-"
    base, digits = 10, body
    if len(body) >= 2 and body[0] == "0" and body[1].lower() in "box":
        base, digits = {"b": 2, "o": 8, "x": 16}[body[1].lower()], body[2:]
    elif len(body) >= 2 and body[0] == "0":
        base, digits = 8, body[1:]
    valid = "0123456789abcdef"[:base]
    clean = digits.replace("_", "")
    if (not clean or any(c.lower() not in valid for c in clean)
            or ("_" in s and not underscores_ok(s))):
        raise GoNumError("ParseInt", s, "invalid syntax")
    value = -int(clean, base) if negative else int(clean, base)
    if not -(1 << (bits - 1)) <= value <= (1 << (bits - 1)) - 1:
        raise GoNumError("ParseInt", s, "value out of range")
    return value


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(s: str) -> bool:
    """strconv.ParseBool."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise GoNumError("ParseBool", s, "invalid syntax")
