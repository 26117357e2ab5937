"""RFC 8785 (JCS) canonicalization.

Number vectors are RFC 8785 Appendix B. Whole-document vectors are the RFC's companion test
data, cyberphone/json-canonicalization ``testdata/input`` -> ``testdata/output``
(``weird.json`` is the sorting example of RFC 8785 section 3.2.3). The independent ``rfc8785``
package is the cross-check for arbitrary values.
"""

from __future__ import annotations

import decimal
import json
import struct

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from proofs.jcs import (
    MAX_SAFE_INTEGER,
    canonicalize,
    serialize_number,
    serialize_string,
    utf16_sort_key,
)

# RFC 8785 Appendix B: IEEE 754 double (hex) -> canonical text.
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),  # minus zero
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),  # round to even
]


def double(hex_bits: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex_bits))[0]


@pytest.mark.parametrize(("bits", "text"), APPENDIX_B)
def test_appendix_b_number(bits: str, text: str) -> None:
    assert serialize_number(double(bits)) == text


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_are_rejected(bits: str) -> None:
    with pytest.raises(ValueError, match="is not a JSON number"):
        canonicalize([double(bits)])


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("1e-7", "1e-7"),
        ("0.000001", "0.000001"),
        ("333333333.33333329", "333333333.3333333"),
        ("-0.0", "0"),
        ("4.50", "4.5"),
        ("2e-3", "0.002"),
        ("1E30", "1e+30"),
        ("0.000000000000000000000000001", "1e-27"),
        ("1.5e300", "1.5e+300"),
        ("123.0", "123"),
        ("1e16", "10000000000000000"),
        ("-1.5e-7", "-1.5e-7"),
        ("0.1", "0.1"),
    ],
)
def test_ecmascript_number_layout(source: str, text: str) -> None:
    assert serialize_number(float(source)) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (-7, "-7"),
        (MAX_SAFE_INTEGER, "9007199254740991"),
        (-MAX_SAFE_INTEGER, "-9007199254740991"),
    ],
)
def test_integers_in_range_print_their_digits(value: int, text: str) -> None:
    assert serialize_number(value) == text


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 10**30])
def test_integers_beyond_i_json_range_are_rejected(value: int) -> None:
    with pytest.raises(ValueError, match=r"outside the I-JSON range"):
        canonicalize({"n": value})


def test_booleans_are_literals_not_numbers() -> None:
    assert canonicalize([True, False, None]) == b"[true,false,null]"


def test_bool_is_not_accepted_as_a_number() -> None:
    with pytest.raises(TypeError, match="bool is not a JSON number"):
        serialize_number(True)


# -- strings (RFC 8785 3.2.2.2) ----------------------------------------------------------------

SHORT_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}


@pytest.mark.parametrize("code", range(0x20))
def test_control_characters_are_escaped(code: int) -> None:
    expected = SHORT_ESCAPES.get(code, f"\\u{code:04x}")
    assert canonicalize(chr(code)) == f'"{expected}"'.encode()


def test_quote_and_backslash_are_escaped() -> None:
    assert canonicalize('a"b\\c') == b'"a\\"b\\\\c"'


@pytest.mark.parametrize("code", [c for c in range(0x20, 0x100) if chr(c) not in '"\\'])
def test_other_latin1_characters_are_written_as_themselves(code: int) -> None:
    assert canonicalize(chr(code)) == ('"' + chr(code) + '"').encode("utf-8")


@pytest.mark.parametrize("text", ["/", "\u2028\u2029", "\u20ac", "\U0001f602", "\ufeff"])
def test_slash_separators_and_non_ascii_are_not_escaped(text: str) -> None:
    assert canonicalize(text) == ('"' + text + '"').encode("utf-8")


def test_unnormalized_unicode_is_kept() -> None:  # unicode.json
    assert canonicalize({"Unnormalized Unicode": "\u1e0d\u0307"}) == (
        '{"Unnormalized Unicode":"\u1e0d\u0307"}'.encode()
    )


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udc00\ud800"])
def test_unpaired_surrogates_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="unpaired surrogate"):
        canonicalize({"k": text})


def test_serialize_string_quotes_and_escapes() -> None:
    assert serialize_string('é"\n') == '"é\\"\\n"'


# -- property order (RFC 8785 3.2.3) -----------------------------------------------------------


def test_rfc_sorting_example() -> None:  # weird.json
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control\u007f",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    names = [json.dumps(k) for k in json.loads(canonicalize(source))]
    assert names == [
        '"\\r"',
        '"1"',
        '"\\u0080"',
        '"\\u00f6"',
        '"\\u20ac"',
        '"\\ud83d\\ude00"',
        '"\\ufb33"',
    ]


def test_cyberphone_weird_json() -> None:
    source = json.loads(
        '{"\\u20ac": "Euro Sign", "1": "One", "\\u0080": "Control\\u007f",'
        ' "\\ud83d\\ude02": "Smiley", "\\u00f6": "Latin Small Letter O With Diaeresis",'
        ' "\\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}'
    )
    expected = (
        '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f602":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonicalize(source) == expected.encode("utf-8")


def test_non_bmp_key_sorts_by_utf16_code_units_not_code_points() -> None:
    # U+1F602 is D83D DE02 in UTF-16, before U+FB33; by code point it would come after.
    assert canonicalize({"\ufb33": 1, "\U0001f602": 2}) == '{"\U0001f602":2,"\ufb33":1}'.encode()


def test_utf16_sort_key_orders_surrogate_pairs_before_high_bmp() -> None:
    assert sorted(["\uffff", "\U00010000", "\ue000"], key=utf16_sort_key) == [
        "\U00010000",
        "\ue000",
        "\uffff",
    ]


def test_sorting_ignores_locale() -> None:  # french.json
    source = {
        "peach": "This sorting order",
        "p\u00e9ch\u00e9": "is wrong according to French",
        "p\u00eache": "but canonicalization MUST",
        "sin": "ingnore locale",
    }
    assert canonicalize(source) == (
        '{"peach":"This sorting order","p\u00e9ch\u00e9":"is wrong according to French",'
        '"p\u00eache":"but canonicalization MUST","sin":"ingnore locale"}'
    ).encode("utf-8")


# -- whole documents ---------------------------------------------------------------------------


def test_cyberphone_values_json() -> None:
    source = json.loads(
        '{"numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001],'
        ' "escaping": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"escaping":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/","literals":[null,true,false],'
        '"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}'
    )
    assert canonicalize(source) == expected.encode("utf-8")


def test_cyberphone_structures_json() -> None:
    source = json.loads(
        '{"1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0}, "10": { }, "": "empty", "a": { },'
        ' "111": [ { } ], "A": { }}'
    )
    assert canonicalize(source) == (
        b'{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}'
    )


def test_simple_string_document() -> None:  # simpleString.json -> outhex/simpleString.txt
    expected = "22 74 68 69 73 20 69 73 20 61 20 74 65 73 74 20 73 74 72 69 6E 67 20 31 32 33 35 22"
    assert canonicalize("this is a test string 1235") == bytes.fromhex(expected)


def test_tuples_are_arrays_and_empty_containers() -> None:
    assert canonicalize({"t": (1, [], {}), "e": ""}) == b'{"e":"","t":[1,[],{}]}'


@pytest.mark.parametrize("value", [{1: "a"}, {("a",): 1}])
def test_non_string_keys_are_rejected(value: dict) -> None:
    with pytest.raises(TypeError, match="object keys must be str"):
        canonicalize(value)


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, decimal.Decimal("1.5"), object()])
def test_unsupported_types_are_rejected(value: object) -> None:
    with pytest.raises(TypeError, match="is not a JSON value"):
        canonicalize([value])


# -- cross-check against the rfc8785 package ---------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=40,
)


@given(value=json_values)
def test_matches_rfc8785_package(value: object) -> None:
    assert canonicalize(value) == rfc8785.dumps(value)


ascii_named_values = st.recursive(  # manifests' shape: the serializer's fast path
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children)
        | st.tuples(children, children)
        | st.dictionaries(st.text(st.characters(max_codepoint=127)), children)
    ),
    max_leaves=40,
)


@given(value=ascii_named_values)
def test_objects_with_ascii_names_match_rfc8785_package_or_are_refused_alike(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (TypeError, ValueError, rfc8785.CanonicalizationError):
        with pytest.raises((TypeError, ValueError)):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@given(shared=ascii_named_values, others=st.lists(ascii_named_values, max_size=4))
def test_an_object_shared_in_several_places_is_written_the_same_each_time(shared, others):
    value = {"a": [shared, *others, shared], "b": {"again": shared}, "c": shared}
    try:
        expected = canonicalize(value)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            canonicalize(value, shares_objects=True)
        return
    assert canonicalize(value, shares_objects=True) == expected


def test_a_manifest_s_resources_share_one_table_schema_and_serialize_as_separate_ones():
    from proofs.manifest import _resources

    schema = {"fields": [{"name": "node_id", "type": "string", "required": True}]}
    files = [{"path": f"d/f{i}.parquet", "bytes": 10, "sha256": "00" * 32} for i in range(3)]
    shared = _resources(files, schema)
    assert shared[0]["schema"] is shared[2]["schema"]
    separate = json.loads(json.dumps(shared))
    assert canonicalize(shared, shares_objects=True) == canonicalize(separate)


@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_match_rfc8785_package(value: float) -> None:
    assert serialize_number(value).encode() == rfc8785.dumps(value)


@given(value=json_values)
def test_output_parses_back_to_the_same_value(value: object) -> None:
    # Every JSON number is a double (I-JSON); "50449804454629550" is 5.044980445462955e16.
    assert json.loads(canonicalize(value), parse_int=float) == value
