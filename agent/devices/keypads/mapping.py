"""Key → national level tables (好差评, 国办发〔2019〕51号), versioned and recorded with each vote.

The national scale has five levels, in this order: 非常满意, 满意, 基本满意, 不满意, 非常不满意;
the last two are 差评 (bad ratings). `level` is the position on that scale, 1..5.

Board profiles name each key after the level it is wired to mean (``very_satisfied`` ...), but
what a key *means* is decided here, not by its name: a table is the explicit contract, and its
version goes into every vote so a later change of table never rewrites the meaning of old votes.
Add a new version instead of editing one that has been used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

LEVEL_NAMES = ("非常满意", "满意", "基本满意", "不满意", "非常不满意")
LEVEL_CODES = ("very_satisfied", "satisfied", "basically_satisfied", "dissatisfied", "very_dissatisfied")
BAD_LEVELS = frozenset({4, 5})  # 差评: must be verified, rectified and answered


@dataclass(frozen=True)
class KeyMeaning:
    """What one physical key means: the label printed on it and the national level."""

    label: str  # printed on the key, e.g. 一般
    level: int  # 1..5 on the national scale

    @property
    def level_name(self) -> str:
        """The national name of the level, e.g. 基本满意."""
        return LEVEL_NAMES[self.level - 1]


@dataclass(frozen=True)
class KeyMapping:
    """A versioned table: board key name → meaning, for one keypad model."""

    version: str
    model: str  # "four_key" | "five_key" (agent.config.Keypad.model)
    keys: Mapping[str, KeyMeaning]

    def meaning(self, key: str) -> KeyMeaning:
        """The meaning of `key`; KeyError names the key and the table."""
        try:
            return self.keys[key]
        except KeyError:
            raise KeyError(
                f"key {key!r} is not in keypad mapping {self.version} (keys: {', '.join(self.keys)})"
            ) from None


def _table(version: str, model: str, rows: list[tuple[str, str, int]]) -> KeyMapping:
    for _, _, level in rows:
        if not 1 <= level <= 5:
            raise ValueError(f"{version}: level {level} is outside 1..5")
    return KeyMapping(version, model, MappingProxyType({key: KeyMeaning(label, level) for key, label, level in rows}))


MAPPINGS: Mapping[str, KeyMapping] = MappingProxyType(
    {
        m.version: m
        for m in (
            # The seeds' window unit: 很满意/满意/一般/不满意. It has no 非常不满意 key; 不满意 stays
            # 不满意 (level 4) rather than being promoted to the worst level.
            _table(
                "keypad4-v1",
                "four_key",
                [
                    ("very_satisfied", "很满意", 1),
                    ("satisfied", "满意", 2),
                    ("basically_satisfied", "一般", 3),
                    ("dissatisfied", "不满意", 4),
                ],
            ),
            # The national five-key unit: labels are the national names.
            _table(
                "keypad5-v1",
                "five_key",
                [(code, name, i + 1) for i, (code, name) in enumerate(zip(LEVEL_CODES, LEVEL_NAMES))],
            ),
        )
    }
)

DEFAULT_MAPPING = MappingProxyType({"four_key": "keypad4-v1", "five_key": "keypad5-v1"})


def get_mapping(version: str) -> KeyMapping:
    """The table named `version`; KeyError lists the known versions."""
    try:
        return MAPPINGS[version]
    except KeyError:
        raise KeyError(f"unknown keypad mapping {version!r}; known: {', '.join(MAPPINGS)}") from None


def default_mapping(model: str) -> KeyMapping:
    """The current table for a keypad model (four_key, five_key)."""
    try:
        return MAPPINGS[DEFAULT_MAPPING[model]]
    except KeyError:
        raise KeyError(f"no keypad mapping for model {model!r}; known models: {', '.join(DEFAULT_MAPPING)}") from None


def mapping_problems(mapping: KeyMapping, model: str, keys: list[str] | tuple[str, ...]) -> list[str]:
    """Why `mapping` cannot serve a keypad of `model` with these key names (empty if it can)."""
    problems = []
    if mapping.model != model:
        problems.append(f"mapping {mapping.version} is for {mapping.model}, keypad is {model}")
    missing = [k for k in keys if k not in mapping.keys]
    if missing:
        problems.append(f"mapping {mapping.version} has no meaning for key(s) {', '.join(missing)}")
    return problems


def is_bad(level: int) -> bool:
    """True for 差评 (不满意, 非常不满意)."""
    return level in BAD_LEVELS
