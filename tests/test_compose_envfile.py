"""env_file contents read as compose-go's dotenv parser reads them, case by case."""

from __future__ import annotations

import pytest

from compose_operator.compose.envfile import EnvFileError, parse

LOOKUP = {"HOST": "db.local", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\nB=two", {"A": "1", "B": "two"}),
        ("export A=1", {"A": "1"}),
        ("A: yaml-style", {"A": "yaml-style"}),
        ("  A = spaced out  ", {"A": "spaced out"}),
        ("# a comment\n\nA=1 # trailing comment", {"A": "1"}),
        ("A=no#comment", {"A": "no#comment"}),
        ("A='single ${HOST} \\n kept'", {"A": "single ${HOST} \\n kept"}),
        ("A='it\\'s'", {"A": "it's"}),
        ('A="line\\nbreak\\ttab \\"q\\" \\\\"', {"A": 'line\nbreak\ttab "q" \\'}),
        ('A="octal \\0101"', {"A": "octal A"}),
        ('A="dollar \\$HOST"', {"A": "dollar $HOST"}),
        ("URL=http://${HOST}:5432", {"URL": "http://db.local:5432"}),
        ("A=first\nB=${A}-second", {"A": "first", "B": "first-second"}),
        ("A=${MISSING:-fallback}", {"A": "fallback"}),
        ("A=$$literal", {"A": "$literal"}),
        ("A=cost $5", {"A": "cost $5"}),
        ("HOST\nNOT_SET", {"HOST": "db.local"}),
        ("HOST", {"HOST": "db.local"}),
        ('A="multi\nline"\nB=2', {"A": "multi\nline", "B": "2"}),
        ("\ufeffA=bom", {"A": "bom"}),
        ("A=", {"A": ""}),
        ("a.b-c[0]=weird but valid", {"a.b-c[0]": "weird but valid"}),
    ],
)
def test_dotenv_format(text: str, expected: dict[str, str]) -> None:
    assert parse(text, LOOKUP) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A B=1", "line 1: key cannot contain a space"),
        ("A=1\nB$=2", "line 2: unexpected character '$' in variable name 'B$=2'"),
        ('A="unterminated', 'line 1: unterminated quoted value "unterminated'),
        ("A=${", "line 1: invalid interpolation format in '${'; write $${ for a literal ${"),
    ],
)
def test_dotenv_errors(text: str, message: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse(text, LOOKUP)
    assert str(caught.value) == message


def test_raw_format_takes_values_literally() -> None:
    text = "A=${HOST} 'quoted' # not a comment\n  B=x\nHOST\n# comment\nNOT_SET\n"
    assert parse(text, LOOKUP, form="raw") == {
        "A": "${HOST} 'quoted' # not a comment",
        "B": "x",
        "HOST": "db.local",
    }


def test_unknown_format_is_refused() -> None:
    with pytest.raises(EnvFileError) as caught:
        parse("A=1", {}, form="json")
    assert str(caught.value) == 'unsupported env_file format "json"'


def test_unset_variables_are_reported() -> None:
    heard: list[str] = []
    assert parse("A=${NOPE}x", {}, unset=heard.append) == {"A": "x"}
    assert heard == ["NOPE"]
