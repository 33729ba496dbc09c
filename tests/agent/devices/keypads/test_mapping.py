"""Key tables: explicit, versioned, national order; the 4-key unit's labels."""

from __future__ import annotations

import pytest

from agent.devices.keypads.mapping import LEVEL_NAMES, MAPPINGS, default_mapping, get_mapping, is_bad, mapping_problems


def test_national_levels_in_order():
    assert LEVEL_NAMES == ("非常满意", "满意", "基本满意", "不满意", "非常不满意")


@pytest.mark.parametrize(
    "key, label, level, name",
    [
        ("very_satisfied", "很满意", 1, "非常满意"),
        ("satisfied", "满意", 2, "满意"),
        ("basically_satisfied", "一般", 3, "基本满意"),
        ("dissatisfied", "不满意", 4, "不满意"),
    ],
)
def test_four_key_table(key, label, level, name):
    m = get_mapping("keypad4-v1").meaning(key)
    assert (m.label, m.level, m.level_name) == (label, level, name)


def test_five_key_table_is_the_national_scale():
    table = get_mapping("keypad5-v1")
    assert [(m.label, m.level) for m in table.keys.values()] == [(name, i + 1) for i, name in enumerate(LEVEL_NAMES)]


def test_defaults_per_model():
    assert default_mapping("four_key").version == "keypad4-v1"
    assert default_mapping("five_key").version == "keypad5-v1"
    with pytest.raises(KeyError, match="six_key"):
        default_mapping("six_key")


def test_tables_cannot_be_edited_in_place():
    with pytest.raises(TypeError):
        MAPPINGS["keypad4-v1"].keys["satisfied"] = None  # type: ignore[index]


def test_unknown_key_and_version_are_named():
    with pytest.raises(KeyError, match="'very_dissatisfied' is not in keypad mapping keypad4-v1"):
        get_mapping("keypad4-v1").meaning("very_dissatisfied")
    with pytest.raises(KeyError, match="known: keypad4-v1, keypad5-v1"):
        get_mapping("nope")


def test_mapping_problems():
    assert mapping_problems(get_mapping("keypad4-v1"), "four_key", ["satisfied"]) == []
    assert len(mapping_problems(get_mapping("keypad4-v1"), "five_key", ["x"])) == 2


@pytest.mark.parametrize("level, bad", [(1, False), (3, False), (4, True), (5, True)])
def test_bad_ratings(level, bad):
    assert is_bad(level) is bad
