"""MATCHER arguments as amtool takes them, made into one selector the API reads."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from itsmd.cli.client import ClientError
from itsmd.correlation.matchers import MatcherError, parse_selector

# An optional alert name before braces: `DiskFull{mount="/"}`.
_BRACED = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{(.*)\}\s*", re.DOTALL)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# What starts as a selector (`{...` or `Name{...`) is read as one, braces and all.
_OPENS = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{")
# One matcher whose value is not quoted (`service=db`), as amtool allows.
_UNQUOTED = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*([^\"'`~].*?|)\s*")


def selector(matchers: Sequence[str]) -> str:
    """The MATCHERs as one selector, all of them to hold (as amtool's matchers): braces
    are optional, a value may be unquoted, and a bare alert name means
    `alertname="NAME"`. A matcher that does not parse is an error naming it."""
    parts: list[str] = []
    for text in matchers:
        braced = _BRACED.fullmatch(text)
        if braced or _OPENS.match(text):
            _check(text, text, 0)  # a selector as written: positions are the user's
            assert braced is not None  # a selector that parses is braced
            name, inner = braced.groups()
            parts += [f'alertname="{name}"'] if name else []
            parts += [inner.strip()] if inner.strip() else []
        elif _NAME.fullmatch(text.strip()):
            parts.append(f'alertname="{text.strip()}"')
        else:
            unquoted = _UNQUOTED.fullmatch(text)
            part = f"{unquoted[1]}{unquoted[2]}{json.dumps(unquoted[3])}" if unquoted else text
            _check(text, "{" + part + "}", 1)
            parts.append(part.strip())
    return "{" + ", ".join(parts) + "}"


def _check(text: str, selector_text: str, shift: int) -> None:
    """ClientError naming the matcher when `selector_text` (built from `text`, its
    positions `shift` further on) does not parse."""
    try:
        parse_selector(selector_text)
    except MatcherError as exc:
        problem = str(exc)
        if shift and exc.position is not None:
            problem = problem.replace(
                f"position {exc.position}:", f"position {exc.position - shift}:"
            )
        raise ClientError(f"matcher {text!r}: {problem}") from None
