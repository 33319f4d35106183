"""Who is who in a room: room codes, presenter tokens and attendees' display names.

A room code is short enough to read off a projector and type on a phone:
`CODE_LENGTH` characters from an alphabet without look-alikes (no 0/O, 1/I/L).
The presenter's token is a long random secret that only the presenter's URL
carries; the store keeps its SHA-256 hash and compares hashes with
`hmac.compare_digest`, so neither a database file nor a timing difference gives
it away.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata

#: Letters and digits nobody confuses on a projector (no 0/O, 1/I/L, no U/V pair).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTWXYZ23456789"
CODE_LENGTH = 5
#: Random bytes of a presenter token (its URL-safe text is about 1.3 times longer).
TOKEN_BYTES = 18
#: The longest text accepted as a token before it is hashed (a hostile link may be long).
MAX_TOKEN_LENGTH = 100
_SEPARATORS = re.compile(r"[\s\-_.]+")


def new_code() -> str:
    """A random room code."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: object) -> str:
    """A typed or linked room code in its canonical form.

    Case, spaces and dashes do not matter (``ab-c d2`` is ``ABCD2``).

    Raises:
        ValueError: with a message an attendee can act on.
    """
    if not isinstance(text, str):
        raise ValueError(f"room code: expected text, got {type(text).__name__}")
    code = _SEPARATORS.sub("", text[: 4 * CODE_LENGTH]).upper()
    if not code:
        raise ValueError("room code: type the code the presenter shows")
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        shown = text.strip()[:20]
        raise ValueError(
            f"room code: {shown!r} is not a room code "
            f"({CODE_LENGTH} letters and digits, like {new_code()})"
        )
    return code


def new_token() -> str:
    """A random presenter token (URL-safe text)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest the store keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def token_matches(token: object, stored_hash: str) -> bool:
    """Whether ``token`` is the one whose hash is ``stored_hash``, in constant time."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return False
    return hmac.compare_digest(token_hash(token), stored_hash)


def clean_name(text: object, most: int) -> str:
    """An attendee's display name: stripped, inner runs of spaces made one, printable,
    1 to ``most`` characters.

    Raises:
        ValueError: saying what is wrong with the name.
    """
    if not isinstance(text, str):
        raise ValueError(f"name: expected text, got {type(text).__name__}")
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not name:
        raise ValueError("name: type the name the class will see on the leaderboard")
    if len(name) > most:
        raise ValueError(f"name: at most {most} characters, got {len(name)}")
    if not name.isprintable():
        raise ValueError("name: use letters, digits, spaces and punctuation only")
    return name


def unique_name(name: str, taken: set[str], most: int) -> str:
    """``name``, or ``name 2``, ``name 3``... : the first not in ``taken`` (compared
    without case), shortened to stay within ``most`` characters."""
    lowered = {t.casefold() for t in taken}
    if name.casefold() not in lowered:
        return name
    number = 2
    while True:
        suffix = f" {number}"
        candidate = name[: most - len(suffix)].rstrip() + suffix
        if candidate.casefold() not in lowered:
            return candidate
        number += 1
