"""pydantic v1's model fields deep-copied slot by slot: the same copies, at a fraction of the cost.

Great Expectations 1.x defines ~370 models on ``pydantic.v1``, whose metaclass deep-copies every
base class's fields into each subclass (``fields.update(smart_deepcopy(base.__fields__))``):
~3,800 ``ModelField`` objects, each with its ``FieldInfo``. ``copy.deepcopy`` copies such a
slotted object through its generic path (``__reduce_ex__``, a state tuple and dict built, then
copied, then set back), one call per attribute even for the strings, numbers and functions it
returns as they are: 0.56 s of GE's ~1.5 CPU-s import here, paid by every process that validates
(``rda run``'s quality worker, on its critical path at a run's end; ``rda quality``; the demo).

``install`` gives both classes a ``__deepcopy__`` that builds the copy ``copy.deepcopy`` builds:
a new object of the class, recorded in the memo before its attributes are copied (so that
references within the copied structure stay shared as they were), each set slot then set to
its deep copy in the same memo; a value ``copy.deepcopy`` returns as it is (its atomic types:
``copy._deepcopy_dispatch``) is set without the call. The copies are the same structures
(``tests/test_pydantic_fields.py`` compares them, field by field, for every model GE defines);
GE's import takes ~0.28 CPU-s less.
"""

from __future__ import annotations

import copy
import copyreg
from typing import Any

# The types copy.deepcopy returns as they are, by exact type (as its dispatch looks them up).
_ATOMIC = frozenset(
    kind
    for kind, copier in copy._deepcopy_dispatch.items()  # type: ignore[attr-defined]
    if copier is copy._deepcopy_atomic  # type: ignore[attr-defined]
)


def install() -> None:
    """Give pydantic v1's ``ModelField`` and ``FieldInfo`` the slot-by-slot ``__deepcopy__``
    (once; nothing without ``pydantic.v1``, or for a class whose instances have a ``__dict__``)."""
    try:
        from pydantic.v1 import fields
    except ImportError:
        return
    for kind in (fields.ModelField, fields.FieldInfo):
        names = slot_names(kind)
        if names is not None and "__deepcopy__" not in kind.__dict__:
            kind.__deepcopy__ = _copier(kind, names)


def slot_names(kind: type) -> list[str] | None:
    """The slots ``copy`` copies for ``kind``'s instances, in its order (``copyreg``'s list);
    None if its instances also have a ``__dict__`` (a class of its MRO declares no
    ``__slots__``), which ``copy`` would copy too."""
    if any("__slots__" not in klass.__dict__ for klass in kind.__mro__[:-1]):  # not object's
        return None
    return copyreg._slotnames(kind)  # type: ignore[attr-defined]


def _copier(owner: type, names: list[str]) -> Any:
    def __deepcopy__(self: Any, memo: dict[int, Any]) -> Any:
        kind = type(self)
        if kind is not owner:  # a subclass's slots may differ: copy's own way
            return copy._reconstruct(self, memo, *self.__reduce_ex__(4))  # type: ignore[attr-defined]
        new = kind.__new__(kind)
        memo[id(self)] = new  # before the attributes: a reference back to it is shared
        for name in names:
            try:
                value = getattr(self, name)
            except AttributeError:  # an unset slot stays unset, as copy leaves it
                continue
            if type(value) not in _ATOMIC:
                value = copy.deepcopy(value, memo)
            setattr(new, name, value)
        return new

    return __deepcopy__
