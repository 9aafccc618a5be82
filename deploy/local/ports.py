"""Free TCP ports for the servers this project starts itself (embedded PostgreSQL and Kafka, test and bench servers).

A port the OS picks with `bind(("127.0.0.1", 0))` comes from its ephemeral range, the same range it draws the
local ports of outgoing connections from. Between the pick and the server's own bind, any outgoing connection
(to PostgreSQL, to Kafka) can take that port, and the server fails with `address already in use`; under a
busy test suite that happened. So the ports come from below the ephemeral range, where the OS never assigns
one on its own, and a process never hands out the same port twice.
"""

import random
import socket
import threading
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: well-known and registered services' ports
_handed_out: set[int] = set()
_lock = threading.Lock()


def ephemeral_range() -> tuple[int, int]:
    """The OS's range for outgoing connections' local ports (Linux's default when it cannot be read)."""
    try:
        low, high = _RANGE_FILE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now, outside the ephemeral range."""
    low, _ = ephemeral_range()
    with _lock:
        if low - _LOWEST >= 1_000:
            for _ in range(1_000):
                port = random.randrange(_LOWEST, low)
                if port not in _handed_out and _bindable(port):
                    _handed_out.add(port)
                    return port
        # No room below the range (or all taken): let the OS pick, as before.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        _handed_out.add(port)
        return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
