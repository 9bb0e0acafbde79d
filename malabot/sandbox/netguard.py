"""Refuse every network connection that does not stay on this machine.

The sandbox and the tests must never reach discord.com (or anything else): inside
`loopback_only()`, connecting or resolving a name other than 127.0.0.0/8, ::1 or localhost
raises `RealNetworkForbidden` before a packet leaves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class RealNetworkForbidden(RuntimeError):
    """Something tried to reach a non-loopback address while the guard was on."""


def is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(address: Any) -> None:
    # AF_UNIX addresses are paths (str/bytes): local by nature.
    if isinstance(address, tuple) and address and not is_loopback(address[0]):
        raise RealNetworkForbidden(f"refused a connection to non-loopback address {address!r}")


def _check_host(host: Any) -> None:
    if host is not None and not is_loopback(host):
        raise RealNetworkForbidden(f"refused to resolve or reach non-loopback host {host!r}")


@contextmanager
def loopback_only() -> Iterator[None]:
    """Patch socket connect/connect_ex, name resolution and asyncio's create_connection."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_gethostbyname = socket.gethostbyname
    real_create_connection: Any = asyncio.base_events.BaseEventLoop.create_connection

    def connect(self: socket.socket, address: Any) -> None:
        _check_address(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check_address(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check_host(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        _check_host(host)
        return real_gethostbyname(host)

    async def create_connection(self: asyncio.AbstractEventLoop, protocol_factory: Any, host: Any = None,
                                *args: Any, **kwargs: Any) -> Any:
        _check_host(host)
        return await real_create_connection(self, protocol_factory, host, *args, **kwargs)

    patches: list[tuple[Any, str, Any]] = [
        (socket.socket, "connect", connect),
        (socket.socket, "connect_ex", connect_ex),
        (socket, "getaddrinfo", getaddrinfo),
        (socket, "gethostbyname", gethostbyname),
        (asyncio.base_events.BaseEventLoop, "create_connection", create_connection),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
