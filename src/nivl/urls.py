"""URLs nivl writes itself; pure.

``safe_url`` is the one gate every link or picture taken from a record passes before nivl
writes it (pages, feeds, IIIF manifests, exports): a record's ``links`` come from anywhere,
and a ``javascript:`` or ``data:`` href must never reach a reader. ``server_url`` checks the
server address a request names (its Host header) before nivl builds absolute URLs on it.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote

from .errors import BadRequest

_URL_SAFE = "%:/?#[]@!$&'()*+,;=~"
#: A host name as DNS and Docker (underscores) give them; RFC 1035 caps a name at 253.
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")
HOST_CHARS = 253
#: Of a bad Host, the characters an error repeats.
SHOWN_CHARS = 80


def safe_url(url: object) -> str | None:
    """An http(s) URL as nivl links to it, or None for anything else.

    http becomes https (nivl's own links use https); spaces and other characters a URL
    may not hold raw (upstream paths contain spaces) are percent-encoded.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    lower = url.lower()
    if lower.startswith("http://") and len(url) > 7:
        url = "https://" + url[7:]
    elif not (lower.startswith("https://") and len(url) > 8):
        return None
    return quote(url, safe=_URL_SAFE)


def shown(value: str, limit: int = SHOWN_CHARS) -> str:
    """``value`` as an error message repeats it: quoted, escapes for what does not print,
    and at most ``limit`` characters of it (a 404 must not echo 20 kB back)."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"… ({len(value):,} characters)"


def check_host(authority: str) -> str:
    """``host[:port]`` from a Host header, as it is, if it names a server: a DNS name
    (underscores allowed), an IPv4 address or a bracketed IPv6 one, with a port of digits.
    Anything else is a bad request (RFC 9112 §3.2 asks for a 400), so that no URL nivl
    writes carries a hostile Host's text."""
    host, sep, port = authority, "", ""
    if authority.startswith("["):
        end = authority.find("]")
        host, rest = authority[: end + 1], authority[end + 1 :]
        sep, port = rest[:1], rest[1:]
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            host = ""
        if end < 0 or sep not in ("", ":"):
            host = ""
    elif authority.count(":") == 1:
        host, sep, port = authority.partition(":")
    good_port = not sep or (port.isascii() and port.isdigit() and int(port) <= 65535)
    name = host[:-1] if host.endswith(".") else host  # "example.org." is fully qualified
    good_host = host.startswith("[") or (
        len(name) <= HOST_CHARS
        and _NAME.fullmatch(name) is not None
        and all(_LABEL.fullmatch(label) for label in name.split("."))
    )
    if not (host and good_port and good_host):
        raise BadRequest(
            f"The Host header ({shown(authority)}) names no server: the server's URL as "
            "this request gives it is no URL"
        )
    return authority


def tag_authority(host: str) -> str:
    """The host as a tag URI's authority (RFC 4151 wants a DNS name there): an IPv6
    address in the ``ipv6-literal.net`` form Windows uses for one in a UNC path
    (``::1`` → ``0-0-0-0-0-0-0-1.ipv6-literal.net``), an underscore as a hyphen."""
    bare = host.strip("[]").split("%")[0]  # an IPv6 zone (fe80::1%25eth0) is local
    try:
        address = ipaddress.IPv6Address(bare)
    except ValueError:
        return host.replace("_", "-").lower()
    groups = address.exploded.split(":")
    return "-".join(format(int(group, 16), "x") for group in groups) + ".ipv6-literal.net"
