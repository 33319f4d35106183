"""Room codes, presenter tokens and display names."""

from __future__ import annotations

import pytest

from optlab.rooms.identity import (
    CODE_ALPHABET,
    CODE_LENGTH,
    MAX_TOKEN_LENGTH,
    clean_name,
    new_code,
    new_token,
    normalise_code,
    token_hash,
    token_matches,
    unique_name,
)


def test_codes_are_short_and_free_of_look_alikes():
    codes = {new_code() for _ in range(200)}
    assert len(codes) > 190
    assert all(len(c) == CODE_LENGTH and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("0O1IL") & set(CODE_ALPHABET)


def test_typed_codes_are_normalised():
    assert normalise_code(" ab-c d2\n") == "ABCD2"
    assert normalise_code("k7m.3x") == "K7M3X"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "type the code"),
        ("ABCD", "is not a room code"),
        ("ABCDEF", "is not a room code"),
        ("ABCD0", "is not a room code"),  # 0 is never in a code
        ("<script>", "is not a room code"),
        (None, "expected text"),
        ("A" * 10_000, "is not a room code"),
    ],
)
def test_bad_codes_get_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        normalise_code(text)


def test_tokens_match_only_their_own_hash():
    token = new_token()
    stored = token_hash(token)
    assert token not in stored and len(stored) == 64
    assert token_matches(token, stored)
    assert not token_matches(new_token(), stored)
    assert not token_matches(token[:-1], stored)
    assert not token_matches("", stored)
    assert not token_matches(None, stored)
    assert not token_matches("x" * (MAX_TOKEN_LENGTH + 1), stored)


def test_names_are_stripped_and_checked():
    assert clean_name("  Ada   Lovelace \t", 30) == "Ada Lovelace"
    with pytest.raises(ValueError, match="type the name"):
        clean_name("   ", 30)
    with pytest.raises(ValueError, match="at most 5 characters, got 6"):
        clean_name("Ababab", 5)
    with pytest.raises(ValueError, match="punctuation only"):
        clean_name("Ada\x00", 30)
    with pytest.raises(ValueError, match="punctuation only"):
        clean_name("Ada\u202e", 30)  # right-to-left override: not printable
    with pytest.raises(ValueError, match="expected text"):
        clean_name(42, 30)


def test_a_taken_name_gets_the_next_free_number_within_the_cap():
    assert unique_name("Ada", {"Bob"}, 30) == "Ada"
    assert unique_name("ada", {"Ada"}, 30) == "ada 2"
    assert unique_name("Ada", {"Ada", "ada 2"}, 30) == "Ada 3"
    assert unique_name("Abcde", {"Abcde"}, 5) == "Abc 2"
