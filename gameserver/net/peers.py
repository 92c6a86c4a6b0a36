"""Connections per remote address: counted from TCP accept to TCP close.

A socket counts from `connection_made` to `connection_lost`, whatever
happens in between (a refused handshake, a handshake that never comes, a
game session), so the count cannot leak: asyncio calls `connection_lost`
exactly once for every transport it made. Each transport keeps the count
(server.py, picows_server.py); the handshake reads it to answer 429
(handshake.py), and sockets far over the cap are closed at accept.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PeerCount", "peer_ip"]


class PeerCount:
    """Open sockets per remote address. Addresses with none are forgotten,
    so the table holds only addresses that are connected now."""

    def __init__(self, max_per_ip: int, refused_per_ip: int) -> None:
        self.max_per_ip = max_per_ip  # 0: no cap
        self._cut_above = max_per_ip + refused_per_ip
        self.open: dict[str, int] = {}

    def add(self, ip: str) -> bool:
        """Count one more socket from `ip`; False when it is to be cut at once."""
        n = self.open[ip] = self.open.get(ip, 0) + 1
        return not self.max_per_ip or n <= self._cut_above

    def release(self, ip: str) -> None:
        n = self.open[ip] - 1
        if n:
            self.open[ip] = n
        else:
            del self.open[ip]

    def over_cap(self, ip: str) -> bool:
        return bool(self.max_per_ip) and self.open.get(ip, 0) > self.max_per_ip


def peer_ip(peername: Any) -> str:
    # (host, port) for IPv4, (host, port, flow, scope) for IPv6; None for odd transports.
    return str(peername[0]) if isinstance(peername, tuple) and peername else "?"
