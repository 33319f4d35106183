"""A setup the presenter pushes: one page and its share-link query.

Every page keeps its URL equal to its share link, so a page's path and query
are the whole setup. What belongs to a person rather than to the setup (the
room code, the presenter's token, presenter view, the CNN lab's own run) is left
out, so pushing can never hand the token to the class.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optlab.links.table import MAX_VALUE_LENGTH

#: The query key of a room's code, and of the presenter's token.
ROOM_KEY, HOST_KEY = "room", "host"
#: Query keys that belong to a person, never to a pushed setup: the room, the
#: token, the view, and the CNN lab's own run (``run=ID``, this browser's training
#: while it runs; an attendee who loaded it would take the presenter's run as theirs).
PERSONAL_KEYS = (ROOM_KEY, HOST_KEY, "view", "run")
#: A page's URL path: lower-case words and dashes ("" is the home page).
_PAGE_PATH = re.compile(r"[a-z0-9][a-z0-9-]{0,39}|")
MAX_KEYS, MAX_VALUES, MAX_KEY_LENGTH = 40, 40, 40


@dataclass(frozen=True)
class Setup:
    """A page's URL path and its share-link query.

    Attributes:
        page: The page's URL path (``""`` for the home page, ``cnn-lab``...).
        params: ``(key, values)`` pairs, personal keys left out.

    Raises:
        ValueError: a malformed path or query (too many keys or values, too long).
    """

    page: str
    params: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.page, str) or not _PAGE_PATH.fullmatch(self.page):
            raise ValueError(f"page: not a page of this app: {str(self.page)[:50]!r}")
        if len(self.params) > MAX_KEYS:
            raise ValueError(f"link: at most {MAX_KEYS} keys, got {len(self.params)}")
        for key, values in self.params:
            if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
                raise ValueError(f"link: a key must be 1 to {MAX_KEY_LENGTH} characters")
            if len(values) > MAX_VALUES:
                raise ValueError(f"{key}: at most {MAX_VALUES} values, got {len(values)}")
            for value in values:
                if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH:
                    raise ValueError(f"{key}: a value must be text of at most {MAX_VALUE_LENGTH}")

    @classmethod
    def from_query(cls, page: str, params: Mapping[str, Sequence[str] | str]) -> Setup:
        """The setup of a page showing ``params`` (personal keys dropped)."""
        pairs = tuple(
            (key, (values,) if isinstance(values, str) else tuple(values))
            for key, values in params.items()
            if key not in PERSONAL_KEYS
        )
        return cls(page, pairs)

    @property
    def query(self) -> dict[str, list[str]]:
        """The share-link query, each key with its values."""
        return {key: list(values) for key, values in self.params}

    def to_json(self) -> str:
        """The setup as stored."""
        return json.dumps({"page": self.page, "params": self.query}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Setup:
        """The inverse of `to_json`.

        Raises:
            ValueError: the text is not a stored setup.
        """
        try:
            data = json.loads(text)
            return cls.from_query(data["page"], data["params"])
        except (TypeError, KeyError, AttributeError, json.JSONDecodeError):
            raise ValueError("setup: not a stored setup") from None
