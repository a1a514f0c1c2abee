"""Format numbers and strings exactly as the Go standard library prints them.

The reference's stdout is produced by encoding/json and fmt; matching it byte for
byte needs Go's float layouts (shortest digits, its exponent thresholds and
exponent spelling), its %q quoting and its JSON string escaping.
"""
from __future__ import annotations

import math


def _shortest_digits(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |x| (x finite, non-zero) and the decimal-point
    position: |x| = 0.DIGITS * 10**point. Python's repr and Go both pick the shortest digit
    string that reads back to x, closest to x when there is a choice."""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exponent(digits: str, point: int, json_style: bool) -> str:
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp_text = f"{abs(exp):02d}"
    if json_style and exp < 0 and exp_text.startswith("0"):
        exp_text = exp_text[1:]  # encoding/json writes e-7, strconv writes e-07
    return f"{mantissa}e{'-' if exp < 0 else '+'}{exp_text}"


def go_float(x: float) -> str:
    """A float64 as encoding/json writes it. Non-finite values raise ValueError
    (Go's json refuses them)."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"json: unsupported value: {go_fmt_v(x)}")
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, point = _shortest_digits(x)
    if 1e-6 <= abs(x) < 1e21:
        return sign + _fixed(digits, point)
    return sign + _exponent(digits, point, json_style=True)


def _non_finite(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return "+Inf" if x > 0 else "-Inf"


def go_fmt_f(x: float, precision: int = 6) -> str:
    """fmt's %.<precision>f (correctly rounded, half to even on the exact binary value)."""
    x = float(x)
    if not math.isfinite(x):
        return _non_finite(x)
    return f"{x:.{precision}f}"


def go_fmt_v(x: float) -> str:
    """fmt's %v of a float64 (strconv 'g' with shortest digits): exponent form when the
    decimal exponent is below -4 or at least 6, so 1e+06 but 100000."""
    x = float(x)
    if not math.isfinite(x):
        return _non_finite(x)
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, point = _shortest_digits(x)
    exp = point - 1
    if exp < -4 or exp >= 6:
        return sign + _exponent(digits, point, json_style=False)
    return sign + _fixed(digits, point)


_QUOTE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(s: str) -> str:
    """strconv.Quote / %q: a double-quoted Go string literal."""
    out = ['"']
    for ch in s:
        if ch in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                 "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json_string(s: str) -> str:
    """A string as encoding/json (Go 1.21, HTML-safe) writes it."""
    out = ['"']
    for ch in s:
        if ch in _JSON_ESCAPES:
            out.append(_JSON_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\ufffd")  # Go replaces invalid UTF-8 with U+FFFD
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
