"""pydantic v1's fields copied slot by slot (``infra/pydantic_fields.py``): for every field of
every model Great Expectations defines, the same structure ``copy.deepcopy``'s own path builds,
sharing nothing mutable with the field it copies."""

from __future__ import annotations

import copy
import copyreg
from typing import Any

import pytest
from pydantic.v1 import BaseModel, validator
from pydantic.v1.fields import FieldInfo, ModelField

from infra import pydantic_fields
from validators.expectations import _great_expectations

_ATOMIC = pydantic_fields._ATOMIC


def _generic_copy(value: Any) -> Any:
    """What ``copy.deepcopy`` built before ``install``: its path for a slotted object."""
    return copy._reconstruct(value, {}, *value.__reduce_ex__(4))


def _attributes(value: Any) -> dict[str, Any]:
    names = copyreg._slotnames(type(value))
    found = {name: getattr(value, name) for name in names if hasattr(value, name)}
    return {**found, **getattr(value, "__dict__", {})}


def _same_structure(a: Any, b: Any, pairs: dict[int, int]) -> bool:
    """Whether ``a`` and ``b`` are the same graph: equal atoms, containers and objects of the
    same types with the same contents, each reference in one matched by one in the other."""
    if a is b:  # the very object in both (an atom, or what both copies left as it was)
        return True
    if type(a) is not type(b) or type(a) in _ATOMIC:
        return False
    if id(a) in pairs:
        return pairs[id(a)] == id(b)
    pairs[id(a)] = id(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(
            _same_structure(x, y, pairs) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            _same_structure(ka, kb, pairs) and _same_structure(va, vb, pairs)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, (set, frozenset)):
        return a == b
    first, second = _attributes(a), _attributes(b)
    return first.keys() == second.keys() and all(
        _same_structure(first[name], second[name], pairs) for name in first
    )


def _mutable_parts(value: Any, found: dict[int, Any]) -> dict[int, Any]:
    """Every list, dict, set, field and field info reachable from ``value``, by id."""
    if type(value) in _ATOMIC or id(value) in found:
        return found
    if isinstance(value, (list, dict, set, ModelField, FieldInfo)):
        found[id(value)] = value
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _mutable_parts(item, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _mutable_parts(key, found)
            _mutable_parts(item, found)
    elif isinstance(value, (ModelField, FieldInfo)):
        for item in _attributes(value).values():
            _mutable_parts(item, found)
    return found


def _models(base: type) -> list[type]:
    every, todo = [], [base]
    while todo:
        for model in todo.pop().__subclasses__():
            every.append(model)
            todo.append(model)
    return every


def _ge_fields() -> list[ModelField]:
    _great_expectations()
    models = [m for m in _models(BaseModel) if m.__module__.startswith("great_expectations")]
    assert len(models) > 300  # GE's models, all defined as it was imported
    return [field for model in models for field in model.__fields__.values()]


def test_installed_when_great_expectations_is_imported() -> None:
    _great_expectations()
    assert "__deepcopy__" in ModelField.__dict__
    assert "__deepcopy__" in FieldInfo.__dict__


def test_every_great_expectations_field_copies_as_copy_copies_it() -> None:
    fields = _ge_fields()
    assert len(fields) > 3_000
    for field in fields:
        assert _same_structure(copy.deepcopy(field), _generic_copy(field), {}), field


def test_a_copy_shares_nothing_mutable_with_its_field() -> None:
    for field in _ge_fields():
        original = _mutable_parts(field, {})
        copied = _mutable_parts(copy.deepcopy(field), {})
        assert not original.keys() & copied.keys(), field


def test_a_reference_within_a_field_stays_one_reference_in_its_copy() -> None:
    default: list[int] = [1, 2]
    field = ModelField.infer(
        name="counts",
        value=default,
        annotation=list[int],
        class_validators={},
        config=BaseModel.__config__,
    )
    assert field.default is field.field_info.default  # one list, referenced twice
    copied = copy.deepcopy(field)
    assert copied.default == [1, 2] and copied.default is not default
    assert copied.default is copied.field_info.default


def test_an_unset_slot_stays_unset() -> None:
    info = FieldInfo(3)
    del info.extra
    copied = copy.deepcopy(info)
    assert copied.default == 3
    assert not hasattr(copied, "extra")


def test_a_subclass_of_a_field_is_copied_the_generic_way() -> None:
    class Tagged(FieldInfo):
        __slots__ = ("tag",)

    info = Tagged(5)
    info.tag = ["kept"]
    copied = copy.deepcopy(info)
    assert type(copied) is Tagged and copied.default == 5
    assert copied.tag == ["kept"] and copied.tag is not info.tag


def test_a_class_whose_instances_have_a_dict_gets_no_slot_list() -> None:
    class Open:
        pass

    assert pydantic_fields.slot_names(Open) is None
    assert pydantic_fields.slot_names(FieldInfo) == copyreg._slotnames(FieldInfo)


def test_a_subclass_validator_of_an_inherited_field_leaves_the_base_model_alone() -> None:
    """The metaclass adds a subclass's validators to its copy of the base's field."""

    class Reading(BaseModel):
        value: int | None = None

    class Positive(Reading):
        @validator("value")
        def positive(cls, value: int | None) -> int | None:
            if value is not None and value <= 0:
                raise ValueError("not positive")
            return value

    assert Reading(value=-1).value == -1
    with pytest.raises(ValueError, match="not positive"):
        Positive(value=-1)
    assert "positive" not in Reading.__fields__["value"].class_validators
