"""Which URLs and addresses webhook calls may go to, checked at save and at send.

An endpoint URL must name its scheme (http or https) and carry no user
name or password. It must not point at a link-local or cloud metadata
address, because a call there could read the credentials of the machine
that Nudgepath runs on. A URL with a DNS name is checked again at each call: the
name is resolved once, every address it resolves to is checked, and the
connection goes to one of those checked addresses, so a name that resolves
to a blocked address (or changes to one) is never connected to.

Loopback and private addresses stay allowed on purpose: the tests call a
receiver on 127.0.0.1, and operators run internal receivers.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

# The shortest signing secret accepted. The HMAC key must not be guessable.
MIN_SECRET_LENGTH = 16

# (network, what it is) for the addresses a call may never reach.
BLOCKED_NETWORKS: tuple[
    tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...
] = (
    (
        ipaddress.ip_network("169.254.0.0/16"),
        "IPv4 link-local, which includes the cloud metadata address 169.254.169.254",
    ),
    (ipaddress.ip_network("fe80::/10"), "IPv6 link-local"),
    (
        ipaddress.ip_network("fd00:ec2::254/128"),
        "the IPv6 instance metadata address of Amazon EC2",
    ),
)


class BlockedAddressError(ValueError):
    """A webhook URL that resolves to an address calls may not go to."""


def check_url(url: str) -> None:
    """Raise ValueError for a URL without scheme, with credentials or a blocked IP.

    A host given as a DNS name is not resolved here; connect_checked() checks
    its addresses at each call.
    """
    if "://" not in url:
        raise ValueError(
            f"Invalid URL {url!r}: write the scheme in front, http:// or https://, "
            "for example https://hooks.example.com/nudgepath."
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(
            f"Invalid URL {url!r}: the scheme {parts.scheme!r} is not supported; "
            "use http:// or https://."
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"Invalid URL {_without_credentials(url)!r}: it contains a user name or "
            "password. Remove them; receivers authenticate calls by their "
            "X-Nudgepath-Signature header."
        )
    host = parts.hostname or ""
    try:
        reason = blocked_reason(host)
    except ValueError:
        # Not an IP address: a DNS name, checked when a call resolves it.
        return
    if reason:
        raise BlockedAddressError(f"Invalid URL {url!r}: {reason}.")


def check_secret(secret: str) -> None:
    """Raise ValueError when a signing secret is shorter than MIN_SECRET_LENGTH."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"The secret is {len(secret)} characters long; use at least "
            f"{MIN_SECRET_LENGTH}, or leave the generated one."
        )


def blocked_reason(address: str) -> str:
    """Return why calls may not go to an IP address, or "" when they may.

    Raises ValueError when address is not an IP address. An IPv4 address
    written as IPv6 (::ffff:169.254.169.254) is checked as IPv4.
    """
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for network, description in BLOCKED_NETWORKS:
        if ip in network:
            return f"{address} is in {network}, {description}"
    return ""


def connect_checked(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
    *args: object,
) -> socket.socket:
    """Resolve a host, check every address, then connect to a checked one.

    A drop-in for socket.create_connection in http.client connections.
    Raises BlockedAddressError before any connection when one of the
    addresses is blocked, and OSError when none accepts the connection.
    """
    host, port = address
    candidates = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in candidates:
        reason = blocked_reason(str(sockaddr[0]))
        if reason:
            raise BlockedAddressError(
                f"The webhook host {host!r} resolves to {reason}; calls may not "
                "go there."
            )

    last_error: OSError | None = None
    for family, kind, protocol, _, sockaddr in candidates:
        sock = socket.socket(family, kind, protocol)
        try:
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    raise last_error or OSError(f"The webhook host {host!r} has no address.")


def _without_credentials(url: str) -> str:
    # Error messages are shown and logged, so the password is left out.
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{host}").geturl()
