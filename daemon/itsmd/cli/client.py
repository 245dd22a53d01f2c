"""The JSON API client under the `itsmd` commands that talk to a running daemon:
the base URL, the bearer token, who acts (`--as`) and one request.

The bearer token comes from `--token-file PATH`, `ITSMD_TOKEN`, `ITSMD_TOKEN_FILE` or
`--token`; the last is visible to every local user (`ps`, /proc), so it draws a warning.
"""

from __future__ import annotations

import argparse
import getpass
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9877"


class ClientError(Exception):
    """The API could not be reached or refused the request."""


def common(p: argparse.ArgumentParser) -> None:
    """--url, the token options and --json, which every API command takes."""
    p.add_argument(
        "--url",
        default=os.environ.get("ITSMD_URL", DEFAULT_URL),
        help=f"itsmd base URL (env ITSMD_URL, default {DEFAULT_URL})",
    )
    token = p.add_mutually_exclusive_group()
    token.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the bearer token from this file (env ITSMD_TOKEN_FILE)",
    )
    token.add_argument(
        "--token",
        help="bearer token; visible to other local users in ps: prefer --token-file "
        "or env ITSMD_TOKEN",
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON")


def bearer_token(args: argparse.Namespace) -> str | None:
    """The token to send: `--token`, `--token-file`, else env `ITSMD_TOKEN` or
    `ITSMD_TOKEN_FILE` (not both); None without any. `--token` warns on stderr."""
    if args.token is not None:
        print(
            "itsmd: warning: --token is visible to other local users (ps, /proc); "
            "use --token-file PATH or env ITSMD_TOKEN instead",
            file=sys.stderr,
        )
        return _checked(args.token, "--token")
    if args.token_file is not None:
        return _token_file(args.token_file, "--token-file")
    value, file = os.environ.get("ITSMD_TOKEN"), os.environ.get("ITSMD_TOKEN_FILE")
    if value and file:
        raise ClientError("both ITSMD_TOKEN and ITSMD_TOKEN_FILE are set: unset one")
    if file:
        return _token_file(file, "ITSMD_TOKEN_FILE")
    return _checked(value, "ITSMD_TOKEN") if value else None


def _token_file(path: str, source: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ClientError(f"cannot read the token file {path} ({source}): {reason}") from None
    return _checked(text.strip(), f"the token file {path} ({source})")


def _checked(token: str, source: str) -> str:
    if not token:
        raise ClientError(f"{source} is empty")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise ClientError(f"{source}: a token has no spaces or control characters")
    if not token.isascii():  # an HTTP header carries it
        raise ClientError(f"{source}: a token is ASCII text")
    return token


def base_url(args: argparse.Namespace) -> str:
    """`--url` (or `ITSMD_URL`), checked before any request: http or https, a host,
    a port that is a number."""
    url: str = args.url
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ClientError(
            f"the itsmd URL {url!r} (--url or ITSMD_URL) has spaces or control characters"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise ClientError(f"the itsmd URL {url!r} (--url or ITSMD_URL): {exc}") from None
    if port == 0:
        raise ClientError(f"the itsmd URL {url!r} (--url or ITSMD_URL): port 0 is no port")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(
            f"the itsmd URL {url!r} (--url or ITSMD_URL): expected http://HOST:PORT "
            f"or https://..., such as {DEFAULT_URL}"
        )
    return url.rstrip("/")


def request(args: argparse.Namespace, method: str, where: str, body: Any = None) -> Any:
    """One request; the answer's JSON (None for 204). A refusal raises ClientError with
    the method, path, status and the API's `error`."""
    raw = _send(args, method, where, body)
    return json.loads(raw) if raw else None


def fetch_text(args: argparse.Namespace, where: str) -> str:
    """A GET whose answer is text (a report in Markdown or HTML), as UTF-8."""
    return _send(args, "GET", where, None, timeout_s=60).decode("utf-8")


def _send(
    args: argparse.Namespace, method: str, where: str, body: Any, timeout_s: float = 10
) -> bytes:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url(args) + where, data=data, method=method)  # noqa: S310
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    token = bearer_token(args)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - operator-given URL
            raw: bytes = resp.read()
            return raw
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise ClientError(f"{method} {where}: {exc.code} {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach itsmd at {args.url}: {reason}") from None
    except (ValueError, http.client.InvalidURL) as exc:  # what the checks above let through
        raise ClientError(f"the itsmd URL {args.url!r} (--url or ITSMD_URL): {exc}") from None


def add_actor(p: argparse.ArgumentParser) -> None:
    """`--as NAME` of the commands that change something."""
    p.add_argument(
        "--as",
        dest="actor",
        metavar="NAME",
        help="who acts, as the daemon records it (default: $USER, else the login name); "
        "with a token, beside the token's name",
    )


def actor(args: argparse.Namespace) -> str:
    """`--as`, else $USER, else the login name: actions are recorded under a person's
    name, not as anonymous."""
    if args.actor is not None:
        if not args.actor.strip():
            raise ClientError("--as: expected a name, got an empty one")
        return str(args.actor.strip())
    user = os.environ.get("USER", "").strip()
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        raise ClientError(
            "who acts? $USER is not set and there is no login name: give --as NAME"
        ) from None


def api_path(template: str, *parts: str) -> str:
    """A path with its parts quoted (an id or a name holding `/` or `?` stays one part)."""
    return template.format(*(urllib.parse.quote(p, safe="") for p in parts))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))
