"""What a class is to the zero-shot scorer: a phrase read from its name, and an optional description.

The scorer never sees a class's examples, only this text, so it has to read
well to a sentence encoder. MNRE-style names carry the argument types
(``/per/org/member_of``): they become words ("person member of
organization"), which is what lets a new ``/per/loc/...`` relation land near
person-location facts. A description, when someone wrote one (``mkg
candidates confirm --description``), is appended.
"""
from __future__ import annotations

_TYPE_WORDS = {"per": "person", "org": "organization", "loc": "location", "misc": "thing"}

# One-line descriptions of MNRE's relations, written here from the label names (MNRE ships none).
MNRE_DESCRIPTIONS: dict[str, str] = {
    "/per/per/parent": "one person is the parent of the other",
    "/per/per/siblings": "two people are brothers or sisters",
    "/per/per/couple": "two people are married or a romantic couple",
    "/per/per/neighbor": "two people live next to each other",
    "/per/per/peer": "two people are colleagues, teammates or appear together as equals",
    "/per/per/charges": "one person is in charge of or accused by the other",
    "/per/per/alumi": "two people studied at the same school",
    "/per/per/alternate_names": "two names of the same person",
    "/per/org/member_of": "a person belongs to or plays for an organization",
    "/per/loc/place_of_residence": "the place where a person lives",
    "/per/loc/place_of_birth": "the place where a person was born",
    "/org/org/alternate_names": "two names of the same organization",
    "/org/org/subsidiary": "one organization is part of or owned by the other",
    "/org/loc/locate_at": "the place where an organization is located",
    "/loc/loc/contain": "one place contains the other",
    "/per/misc/present_in": "a person appears in or attends an event or work",
    "/per/misc/awarded": "a person received an award or prize",
    "/per/misc/race": "the race or ethnicity of a person",
    "/per/misc/religion": "the religion of a person",
    "/per/misc/nationality": "the nationality of a person",
    "/misc/misc/part_of": "one thing is part of another",
    "/misc/loc/held_on": "the place where an event is held",
}


def class_phrase(name: str, description: str | None = None) -> str:
    """The text a class is encoded from.

    ``/per/org/member_of`` -> ``"person member of organization"``; a plain
    name (``OWNS``, ``band_member``) is lower-cased with ``_``/``-`` as spaces.
    """
    parts = name.strip("/").split("/")
    if len(parts) == 3 and parts[0] in _TYPE_WORDS and parts[1] in _TYPE_WORDS:
        words = f"{_TYPE_WORDS[parts[0]]} {_words(parts[2])} {_TYPE_WORDS[parts[1]]}"
    elif len(parts) == 1 and parts[0].lower() in _TYPE_WORDS:  # an entity type's abbreviation: PER -> person
        words = _TYPE_WORDS[parts[0].lower()]
    else:
        words = _words(parts[-1])
    return f"{words}: {description.strip()}" if description and description.strip() else words


def _words(token: str) -> str:
    return " ".join(token.replace("_", " ").replace("-", " ").lower().split())
