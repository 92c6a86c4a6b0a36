"""gameserver: an authoritative real-time game server.

Clients speak protocol version 1 (docs/protocol.md) over WebSocket; rooms
tick at a fixed rate and send versioned deltas of their state.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
