"""`env_file` and `label_file` contents, parsed exactly as compose-go's `dotenv` package does.

Format `.env` (the default): `KEY=value` or `KEY: value`, an optional `export ` prefix, `#`
comments (on unquoted values only after a space: `A=b#c` keeps `#c`); unquoted values are
trimmed; single quotes keep everything but `\\'`; double quotes expand `\\n`, `\\t`, `\\"`,
`\\\\`, `\\$` and octal `\\0NNN`; unquoted and double-quoted values interpolate `${VAR}`, looking
a name up in the given environment first, then in the keys read so far. A line with only `KEY`
takes the value from the given environment, or is skipped. Format `raw` (docker compose's
`docker run --env-file` parser): `KEY=value` taken literally, `KEY` from the environment.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping

from compose_operator.compose.interpolate import InterpolationError, interpolate

FORMATS = ("", ".env", "raw")


class EnvFileError(Exception):
    """The text is not a valid env file."""


_EXPORT = re.compile(r"^export\s+")
_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0\d{0,3})')
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "\\": "\\",
}


def parse(
    text: str,
    lookup: Mapping[str, str],
    *,
    form: str = "",
    unset: Callable[[str], None] = lambda name: None,
) -> dict[str, str]:
    """The variables of one file; raises EnvFileError. `unset` hears each variable a value
    used that had no value (Compose warns about each)."""
    if form not in FORMATS:
        raise EnvFileError(f'unsupported env_file format "{form}"')
    text = text.removeprefix("\ufeff")
    if form == "raw":
        return _parse_raw(text, lookup)
    return _Parser(lookup, unset).parse(text)


def _parse_raw(text: str, lookup: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.partition("=")
        if any(character.isspace() for character in key):
            raise EnvFileError(f"line {number}: variable '{key}' contains whitespaces")
        if equals:
            out[key] = value
        elif key in lookup:
            out[key] = lookup[key]
    return out


def _is_space(character: str) -> bool:
    """Go dotenv's isSpace: blanks that are not line breaks."""
    return character in "\t\v\f\r \x85\xa0"


class _Parser:
    def __init__(self, lookup: Mapping[str, str], unset: Callable[[str], None]) -> None:
        self.lookup = lookup
        self.unset = unset
        self.line = 1

    def parse(self, text: str) -> dict[str, str]:
        out: dict[str, str] = {}
        rest = text
        while True:
            rest = self._statement_start(rest)
            if not rest:
                return out
            key, rest, inherited = self._key(rest)
            if " " in key:
                raise EnvFileError(f"line {self.line}: key cannot contain a space")
            if inherited:
                if key in self.lookup:
                    out[key] = self.lookup[key]
                continue
            value, rest = self._value(rest, out)
            out[key] = value

    def _statement_start(self, text: str) -> str:
        """The text from the next statement on, past blank lines and comment lines."""
        while True:
            position = next((i for i, c in enumerate(text) if not c.isspace()), len(text))
            self.line += text.count("\n", 0, position)
            text = text[position:]
            if not text or text[0] != "#":
                return text
            newline = text.find("\n")
            if newline < 0:
                return ""
            text = text[newline:]

    def _key(self, text: str) -> tuple[str, str, bool]:
        if _EXPORT.match(text):
            text = text.removeprefix("export").lstrip("\t\v\f\r \x85\xa0")
        for index, character in enumerate(text):
            if _is_space(character):
                continue
            if character in "=:\n":
                key = text[:index]
                inherited = character == "\n"
                if inherited and " " not in key:
                    self.line += 1
                rest = text[index + 1 :].lstrip("\t\v\f\r \x85\xa0")
                return key.rstrip(), rest, inherited
            if character in "_.-[]" or unicodedata.category(character)[0] in "LN":
                continue
            first_line = text.split("\n", 1)[0]
            raise EnvFileError(
                f"line {self.line}: unexpected character {character!r} in variable name "
                f"{first_line!r}"
            )
        # A last line `KEY` without a newline: inherited, like `KEY` on any other line
        # (compose-go would read it as a value with an empty key).
        return text.rstrip(), "", True

    def _value(self, text: str, out: Mapping[str, str]) -> tuple[str, str]:
        quote = text[:1] if text[:1] in ("'", '"') else ""
        if not quote:
            value, _, rest = text.partition("\n")
            self.line += 1
            value = value.split(" #", 1)[0].rstrip()
            return self._expand(value, out), rest
        chars: list[str] = []
        escaped = False
        for index in range(1, len(text)):
            character = text[index]
            if character == "\n":
                self.line += 1
            if character != quote:
                if not escaped and character == "\\":
                    escaped = True
                    continue
                if escaped:
                    escaped = False
                    chars.append("\\")
                chars.append(character)
                continue
            if escaped:
                escaped = False
                chars.append(character)
                continue
            value = "".join(chars)
            if quote == '"':
                value = self._expand(_expand_escapes(value), out)
            return value, text[index + 1 :]
        first_line = text.split("\n", 1)[0]
        raise EnvFileError(f"line {self.line}: unterminated quoted value {first_line}")

    def _expand(self, value: str, out: Mapping[str, str]) -> str:
        try:
            result = interpolate(value, {**out, **self.lookup})
        except InterpolationError as error:
            raise EnvFileError(f"line {self.line - 1}: {error}") from None
        for name in result.unset:
            self.unset(name)
        return result.value


def _expand_escapes(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escape = match.group()
        if escape == "\\$":
            return "$$"  # interpolation's own escape for a literal $
        if escape.startswith("\\0"):
            digits = escape[2:]
            if len(digits) == 3 and all(d in "01234567" for d in digits):
                value = int(digits, 8)
                if value <= 0xFF:
                    return chr(value)
            return escape
        return _SIMPLE_ESCAPES[escape[1]]

    return _ESCAPE.sub(replace, text)
