"""The rules both leaf encoders of ``proofs.leaves`` share: which Arrow types encode as what,
the limits on their values, and the errors that name the column and row breaking them."""

from __future__ import annotations

import base64

import pyarrow as pa

UTC_TIMEZONES = frozenset({"UTC", "Etc/UTC", "Z", "+00:00"})
"""Arrow timestamp time zone names accepted as UTC (a missing time zone is read as UTC)."""

MIN_MICROS = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z in microseconds since the epoch
MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
MIN_DAYS = -719_162  # 0001-01-01 in days since the epoch
MAX_DAYS = 2_932_896  # 9999-12-31


class LeafEncodingError(ValueError):
    """A published value has no leaf encoding. ``column`` names it; ``row`` is set if known."""

    def __init__(self, column: str, problem: str, row: int | None = None) -> None:
        self.column = column
        self.row = row
        where = f"column {column!r}" + (f", row {row}" if row is not None else "")
        super().__init__(f"{where}: {problem}")


def is_string(typ: pa.DataType) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ) or _is(typ, "string_view")


def is_binary(typ: pa.DataType) -> bool:
    return (
        pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_fixed_size_binary(typ)
        or _is(typ, "binary_view")
    )


def is_list(typ: pa.DataType) -> bool:
    return pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)


def _is(typ: pa.DataType, name: str) -> bool:
    check = getattr(pa.types, f"is_{name}", None)
    return bool(check and check(typ))


def base64url(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def check_utc(typ: pa.TimestampType, column: str) -> None:
    if typ.tz is not None and typ.tz not in UTC_TIMEZONES:
        raise LeafEncodingError(
            column, f"timestamp time zone {typ.tz!r} is not UTC; convert to UTC before publishing"
        )


def check_unique(names: list[str], what: str) -> None:
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate {what} {duplicates}: a JSON object needs unique names")


def out_of_range(value: int, low: int, high: int) -> bool:
    return not low <= value <= high


def is_finite_number(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def row_index(first_row: int | None, index: int) -> int | None:
    return None if first_row is None else first_row + index


def int_problem(value: object) -> str:
    return f"integer {value} is outside the I-JSON range +-(2**53 - 1)"


def float_problem(value: float) -> str:
    return f"{value} is not a JSON number (NaN and Infinity cannot be published)"


def nanos_problem() -> str:
    return "timestamp has nanoseconds that are not whole microseconds (leaves keep 6 digits)"
