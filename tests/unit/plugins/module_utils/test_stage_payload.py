"""Payload splitting: POSIX shell word rules, nothing expanded, shell operators refused."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_NESTING,
    PayloadError,
    split_payload,
)


@pytest.mark.parametrize(("payload", "words"), [
    ("", []),
    ("   \n", []),
    ("param1=val1 param2=val2", ["param1=val1", "param2=val2"]),
    ("a=1 \"b c\" 'd;e' $(touch /tmp/pwned)", ["a=1", "b c", "d;e", "$(touch /tmp/pwned)"]),
    ("`rm -rf /` x", ["`rm -rf /`", "x"]),
    ("pre$(echo $(id) 'a)b')post z", ["pre$(echo $(id) 'a)b')post", "z"]),
    ("${HOME} $HOME $((1 + 2))", ["${HOME}", "$HOME", "$((1 + 2))"]),
    ("\"x $(a b) y\"", ["x $(a b) y"]),
    (r'"a\"b" "c\$d" "e\f"', ['a"b', "c$d", r"e\f"]),
    (r"a\ b c\;d", ["a b", "c;d"]),
    ("'multi\nline' \"two\nlines\"", ["multi\nline", "two\nlines"]),
    ("a#b 'x'#", ["a#b", "x#"]),
    ("''", [""]),
    ("a''b", ["ab"]),
    ("\t tab\tseparated ", ["tab", "separated"]),
    ("caf\u00e9 \u2603 '\x1b[0m'", ["caf\u00e9", "\u2603", "\x1b[0m"]),
])
def test_split_payload_words(payload: str, words: list) -> None:
    assert split_payload(payload) == words


@pytest.mark.parametrize(("payload", "complaint"), [
    ("a; rm -rf /", "unquoted shell operator ';'"),
    ("a && b", "unquoted shell operator '&'"),
    ("a | b", "unquoted shell operator '|'"),
    ("a > /etc/passwd", "unquoted shell operator '>'"),
    ("(a)", "unquoted shell operator '('"),
    ("a\nb", "unquoted line break"),
    ("a #comment", "comment"),
    ("'open", "unterminated single quote"),
    ('"open', "unterminated double quote"),
    ("$(open", "unterminated $("),
    ("`open", "unterminated backquote"),
    ("trailing\\", "lone backslash"),
    ("a\x00b", "NUL byte"),
    ("caf\u00e9 \udcff", "payload is not UTF-8 text: it has the byte 0xff at offset 5"),
    ("'\udc80'", "it has the byte 0x80 at offset 1"),
    ("a\ud800", "it has the lone surrogate U\\+D800 at offset 1"),
    ("\udc41", "it has the lone surrogate U\\+DC41 at offset 0"),
])
def test_split_payload_refuses_what_a_shell_would_not_pass_on(payload: str, complaint: str) -> None:
    with pytest.raises(PayloadError, match=complaint.replace("$", r"\$").replace("(", r"\(")):
        split_payload(payload)


def test_split_payload_size_limit() -> None:
    assert split_payload("x" * MAX_PAYLOAD_BYTES) == ["x" * MAX_PAYLOAD_BYTES]
    with pytest.raises(PayloadError, match="bytes long"):
        split_payload("x" * (MAX_PAYLOAD_BYTES + 1))
    # Counted in UTF-8 bytes, as argv and the environment count them.
    with pytest.raises(PayloadError, match="payload is %d bytes long" % (MAX_PAYLOAD_BYTES + 2)):
        split_payload("\u00e9" * (MAX_PAYLOAD_BYTES // 2 + 1))


@pytest.mark.parametrize("unit", ['"$(', '$("', "${\"", "$(\"$("])
def test_split_payload_refuses_nesting_past_the_limit_without_a_traceback(unit: str) -> None:
    # Each quote inside a substitution (and each substitution inside quotes) is a level of the splitter's recursion.
    with pytest.raises(PayloadError, match="nests quotes and substitutions more than %d deep" % MAX_PAYLOAD_NESTING):
        split_payload(unit * 1000)


def test_split_payload_takes_nesting_up_to_the_limit() -> None:
    levels = MAX_PAYLOAD_NESTING // 2  # '"$(' is two levels
    assert split_payload('"$(' * levels + ")\"" * levels + " next") == ['$(' + '"$(' * (levels - 1) + ')"' * (levels - 1) + ")", "next"]
    # $( without quotes inside is counted by a loop, not recursion: any depth is taken.
    assert split_payload("$(" * 1000 + ")" * 1000) == ["$(" * 1000 + ")" * 1000]


def _dash_words(payload: str) -> list:
    """How /bin/sh (dash) splits the payload into arguments, globbing off."""
    script = "set -f; printf '%s\\0' " + payload
    output = subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True).stdout
    return output.decode().split("\0")[:-1]


# Characters whose meaning our splitter and a POSIX shell share; expansions ($, `, ~) are left out
# because a shell would expand them and we keep them literal by design.
_ALPHABET = st.sampled_from(list("ab= -,./:*?%+@^{}#'\"\\\t"))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, min_size=1, max_size=24).map("".join))
def test_split_payload_agrees_with_a_posix_shell(payload: str) -> None:
    try:
        words = split_payload(payload)
    except PayloadError:
        return
    if not words:
        return  # printf with no argument prints its format once; nothing to compare
    assert words == _dash_words(payload)


def test_secret_env_is_checked_naming_the_variable_never_its_value() -> None:
    from ansible_collections.kvmops.rolling.plugins.module_utils._stage import checked_secret_env
    assert checked_secret_env({"MIRROR_TOKEN": "s3cr3t", "PORT": 8080}) == {"MIRROR_TOKEN": "s3cr3t", "PORT": "8080"}
    assert checked_secret_env(None) == {} and checked_secret_env("") == {}
    for bad, complaint in (({"1X": "s3cr3t"}, "'1X' is not an environment variable name"),
                           ({"RM_HOST": "s3cr3t"}, "names starting with RM_ are the stage's own"),
                           ({"T": ["s3cr3t"]}, "the value of T must be a string, got a list"),
                           ({"T": "s3\0cr3t"}, "the value of T holds a NUL byte"),
                           ("T=s3cr3t", "rm_secret_env must be a mapping")):
        try:
            checked_secret_env(bad)
        except ValueError as exc:
            assert complaint in str(exc) and "s3cr3t" not in str(exc), str(exc)
        else:
            raise AssertionError("accepted %r" % (bad,))


def test_secrets_are_masked_longest_first() -> None:
    from ansible_collections.kvmops.rolling.plugins.module_utils._stage import mask_secrets
    assert mask_secrets("token=abc-abcdef; short=abc", ["abc", "abc-abcdef", ""]) == "token=********; short=********"
