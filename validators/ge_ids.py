"""Great Expectations' metric ids, computed without its generic JSON conversion for plain values.

GE names every metric it computes by ``IDDict.to_id``: the MD5 of ``json.dumps`` of the metric's
keyword arguments after ``convert_to_json_serializable``, a recursive function that asks each
value a dozen ``isinstance`` questions (pydantic model? GE's dict types? NaN? enum? numpy?)
before returning it unchanged. One validation builds ~1,800 metric configurations of two ids
each: measured here, 10-20 % of a dataset checkpoint's validation (0.10 s of 0.55-1.0 s), all of
it spent on values that are plain already — column names, batch ids, bounds, value sets.

For a value made only of exact ``str``/``int``/``bool``/``None``/finite ``float`` leaves in exact
``dict`` (string keys), ``list`` and ``tuple`` containers, GE's conversion returns an equal
value (a tuple becomes a list, which ``json.dumps`` writes alike), so its ``json.dumps`` is the
same text: that is checked here with exact types and dumped directly. Anything else — NaN (GE
writes null), numpy scalars, sets, dates, GE's own dict types, subclasses — goes through GE's
conversion, as before. The ids, and so which metrics are shared between expectations, are the
same strings (``tests/test_ge_ids.py``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_SCALARS = frozenset({str, int, bool, type(None)})
original_to_id: Any = None  # GE's own, once replaced (kept for the tests' comparison)


def plain(value: Any) -> bool:
    """Whether GE's ``convert_to_json_serializable`` would give back a value that ``json.dumps``
    writes as it writes ``value`` itself (exact types only: a subclass may convert otherwise)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return value == value  # NaN: GE writes null, json.dumps NaN
    # Loops rather than all() over a generator: this runs ~26,000 times a validation.
    if kind is dict:
        for key, item in value.items():  # noqa: SIM110
            if type(key) is not str or not plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110
            if type(item) not in _SCALARS and not plain(item):
                return False
        return True
    return False


def install(id_dict: type, convert: Any) -> None:
    """Replace ``id_dict.to_id`` (GE's ``IDDict``) by one that skips ``convert`` (GE's
    ``convert_to_json_serializable``) for plain values; once per process."""
    global original_to_id
    if original_to_id is not None:
        return

    def to_id(self: dict, id_keys: Any = None, id_ignore_keys: Any = None) -> str | tuple:
        # GE 1.x's IDDict.to_id, line for line, but for the conversion of plain values.
        if id_keys is None:
            id_keys = self.keys()
        if id_ignore_keys is None:
            id_ignore_keys = self._id_ignore_keys
        id_keys = set(id_keys) - set(id_ignore_keys)
        if len(id_keys) == 0:
            return ()
        if len(id_keys) == 1:
            key = next(iter(id_keys))
            return f"{key}={self[key]!s}"
        data = {k: self[k] for k in id_keys}
        if not plain(data):
            data = convert(data=data)
        text = json.dumps(data, sort_keys=True)
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    original_to_id = id_dict.to_id
    id_dict.to_id = to_id
