"""RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.

Standard library only. Python values map to JSON as ``json`` does: ``None`` -> null,
``bool`` -> true/false, ``int``/``float`` -> number, ``str`` -> string, ``list``/``tuple`` ->
array, ``dict`` with ``str`` keys -> object. The canonical form (RFC 8785 section 3.2) is:

* no whitespace (3.2.1);
* literals ``null``, ``true``, ``false`` (3.2.2.1);
* strings escaped as in 3.2.2.2: ``\\"``, ``\\\\``, ``\\b``, ``\\t``, ``\\n``, ``\\f``, ``\\r``
  for those characters, ``\\u00xx`` (lowercase hex) for the other controls U+0000..U+001F,
  every other character as itself, the whole output encoded as UTF-8 (3.2.4);
* numbers as ECMAScript ``Number.prototype.toString`` prints the IEEE 754 double (3.2.2.3);
* object members sorted by their names compared as arrays of UTF-16 code units (3.2.3).

I-JSON (RFC 7493), which RFC 8785 requires (3.1), is enforced with ``ValueError``: NaN and
infinities, integers outside +-(2**53 - 1) (they would not survive a round trip through a
double), and strings with unpaired surrogates are rejected. Values of other types raise
``TypeError``.
"""

from __future__ import annotations

import json.encoder
import math
from collections.abc import Callable

__all__ = [
    "MAX_SAFE_INTEGER",
    "canonicalize",
    "serialize_number",
    "serialize_string",
    "utf16_sort_key",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer magnitude accepted (I-JSON, RFC 7493 2.2; ECMAScript Number.MAX_SAFE_INTEGER)."""

# json.encoder.encode_basestring (C-accelerated) quotes a str and escapes exactly the set of
# RFC 8785 3.2.2.2 -- '"', '\\', the two-character escapes \b \t \n \f \r, and \u00xx with
# lowercase hex for the remaining controls U+0000..U+001F -- leaving every other character,
# including U+007F and non-ASCII, as itself. tests/test_jcs.py pins this for U+0000..U+00FF.
_quote: Callable[[str], str] = json.encoder.encode_basestring


def canonicalize(value: object, shares_objects: bool = False) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of a JSON-compatible Python value.

    ``shares_objects``: the value holds the same object in several places (a manifest built
    here: one Table Schema in every resource), whose output is then copied, not made again.
    """
    parts = _Parts({} if shares_objects else None)
    _serialize(value, parts)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"string contains an unpaired surrogate {text[exc.start : exc.end]!r}, "
            "which is not valid I-JSON (RFC 7493 2.1) and has no UTF-8 encoding"
        ) from None


def serialize_string(value: str) -> str:
    """Return the quoted, escaped JSON string for ``value`` (RFC 8785 3.2.2.2), as ``str``.

    The result still has to be UTF-8 encoded, which fails for unpaired surrogates.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    return _quote(value)


def utf16_sort_key(name: str) -> bytes:
    """Sort key ordering property names by UTF-16 code units (RFC 8785 3.2.3).

    Big-endian UTF-16 bytes compare like the sequence of 16-bit code units, so a non-BMP
    character (a surrogate pair, 0xD800..0xDBFF first) sorts before U+E000..U+FFFF, unlike
    comparing Python ``str`` by code point.
    """
    return name.encode("utf-16-be", "surrogatepass")


def serialize_number(value: int | float) -> str:
    """Return ECMAScript ``Number.prototype.toString`` of ``value`` (RFC 8785 3.2.2.3).

    ``int`` must be within +-(2**53 - 1), where it is exactly a double and prints as its
    digits. ``float`` must be finite; ``-0.0`` prints as ``0``. The digits are the shortest that
    round-trip to the same double (Python's ``repr`` computes them, as ECMAScript requires);
    they are then laid out per ECMAScript: with ``n`` the decimal exponent such that the value
    is ``0.d1d2...dk * 10**n``,

    * ``k <= n <= 21``: the digits then ``n - k`` zeros (``1e20`` -> ``100000000000000000000``);
    * ``0 < n <= 21``: a decimal point after ``n`` digits (``4.5``);
    * ``-6 < n <= 0``: ``0.`` then ``-n`` zeros then the digits (``0.000001``);
    * otherwise exponent form ``d[.ddd]e+x`` / ``d[.ddd]e-x`` (``1e+21``, ``1e-7``).
    """
    if isinstance(value, bool):
        raise TypeError("bool is not a JSON number")
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(int(value))
        raise ValueError(
            f"integer {value} is outside the I-JSON range +-(2**53 - 1) (RFC 7493 2.2)"
        )
    if isinstance(value, float):
        return _serialize_float(value)
    raise TypeError(f"expected int or float, got {type(value).__name__}")


def _serialize_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number (RFC 8785 3.2.2.3)")
    if value == 0.0:
        return "0"  # also -0.0
    text = repr(value)
    if "e" not in text:
        # Python uses positional notation only for 1e-4 <= |x| < 1e16, where ECMAScript does
        # too, with the same digits; it only adds ".0" to integral values.
        return text[:-2] if text.endswith(".0") else text
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    mantissa, _, exponent = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    n = len(int_part) + int(exponent)
    significant = digits.lstrip("0")
    n -= len(digits) - len(significant)
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exp_text = ("e+" if e >= 0 else "e-") + str(abs(e))
    if k == 1:
        return sign + digits + exp_text
    return sign + digits[0] + "." + digits[1:] + exp_text


class _Parts(list):
    """The output's pieces and, when asked to keep them, where the objects already serialized
    lie among them: the same object met again is copied from there. Objects are told apart by
    ``id``: all of them are alive, and not changed, for the length of one ``canonicalize``."""

    __slots__ = ("spans",)

    def __init__(self, spans: dict[int, tuple[int, int]] | None) -> None:
        super().__init__()
        self.spans = spans


def _serialize(value: object, out: _Parts) -> None:
    """The common shapes by exact type first (strings, objects, arrays, safe integers); the rest
    (literals, floats, subclasses) by ``_serialize_any``. A manifest's hundreds of file entries
    are serialized twice as fast this way."""
    kind = type(value)
    if kind is str:
        out.append(_quote(value))
    elif kind is dict:
        _serialize_object(value, out)  # type: ignore[arg-type]
    elif kind is list or kind is tuple:
        _serialize_array(value, out)  # type: ignore[arg-type]
    elif kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:  # type: ignore[operator]
        out.append(str(value))
    else:
        _serialize_any(value, out)


def _serialize_any(value: object, out: _Parts) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, (int, float)):
        out.append(serialize_number(value))
    elif isinstance(value, (list, tuple)):
        _serialize_array(value, out)
    elif isinstance(value, dict):
        _serialize_object(value, out)
    else:
        raise TypeError(f"{type(value).__name__} is not a JSON value")


def _serialize_array(value: list | tuple, out: _Parts) -> None:
    out.append("[")
    first = True
    for item in value:
        if not first:
            out.append(",")
        first = False
        _serialize(item, out)
    out.append("]")


def _serialize_object(value: dict, out: _Parts) -> None:
    spans = out.spans
    if spans is not None:
        if id(value) in spans:
            first_at, end = spans[id(value)]
            out.extend(out[first_at:end])
            return
        start = len(out)
    out.append("{")
    first = True
    for name in _sorted_names(value):
        if not first:
            out.append(",")
        first = False
        out.append(_quote(name))
        out.append(":")
        _serialize(value[name], out)
    out.append("}")
    if spans is not None:
        spans[id(value)] = (start, len(out))


def _sorted_names(value: dict) -> list[str]:
    """The object's names in UTF-16 code unit order (RFC 8785 3.2.3); ASCII names sort alike by
    code point, without the encoding."""
    try:
        ascii_names = "".join(value).isascii()
    except TypeError:  # a name that is no str
        name = next(n for n in value if not isinstance(n, str))
        raise TypeError(f"object keys must be str, got {type(name).__name__}: {name!r}") from None
    return sorted(value) if ascii_names else sorted(value, key=utf16_sort_key)
