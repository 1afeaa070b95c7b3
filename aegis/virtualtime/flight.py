"""Bytes in flight between the loop's own sockets: what lets a virtual-time loop tell "idle"
from "the other end has not read it yet" without looking at the wall clock."""

from __future__ import annotations

import array
import fcntl
import socket
import termios
from collections.abc import Callable
from typing import Any

__all__ = ["Address", "CountingSocket", "Flight", "addr"]

Address = tuple[Any, ...]
Direction = tuple[Address, Address]  # (sender's address, receiver's address)


def addr(value: Any) -> Address:
    return tuple(value[:2]) if isinstance(value, tuple) else (value,)


class End:
    """One of the loop's TCP sockets whose other end may be the loop's too."""

    __slots__ = ("client", "key", "mirror", "orphan", "received", "sent", "sock")

    def __init__(self, key: Direction, client: bool) -> None:
        self.key = key  # (local, peer)
        self.client = client  # it dialled one of the loop's servers (so its peer will be ours)
        self.sent = 0
        self.received = 0
        self.mirror: End | None = None
        self.orphan = False  # the other end closed: what this one sends is never read
        self.sock: socket.socket | None = None

    def counts_sends(self) -> bool:
        return not self.orphan and (self.client or self.mirror is not None)

    def unread(self) -> int:
        """Bytes this end sent that the loop's other end has not read (0 if that end is not ours)."""
        if not self.counts_sends():
            return 0
        return self.sent - (self.mirror.received if self.mirror is not None else 0)

    def arrived(self, reading: Callable[[socket.socket], bool]) -> bool:
        """No byte this end sent is still on its way: each is in its reader's socket buffer, or
        waits for a reader that has stopped reading (a paused transport), or for an accept."""
        reader = self.mirror.sock if self.mirror is not None else None
        if reader is None or not reading(reader):
            return True
        try:
            queued = array.array("i", [0])
            fcntl.ioctl(reader.fileno(), termios.FIONREAD, queued)
        except OSError:
            return True
        return queued[0] >= self.unread()


class Flight:
    """Bytes written by one of the loop's sockets and not yet read by the loop's other end.

    A client end counts from its first byte (its server end is accepted a moment later); a server
    end counts once its client end is known, so an outside client (another process) never does.
    """

    def __init__(self) -> None:
        self.ends: dict[Direction, End] = {}
        self.total = 0
        self.listening: dict[Address, socket.socket] = {}  # the loop's servers, by address
        self.connecting = 0

    def register(self, local: Address, peer: Address, *, client: bool) -> End:
        end = End((local, peer), client)
        mirror = self.ends.get((peer, local))
        self.ends[end.key] = end
        if mirror is not None:
            before = mirror.unread()
            end.mirror, mirror.mirror = mirror, end
            self.total += mirror.unread() - before + end.unread()
        return end

    def sent(self, end: End, n: int) -> None:
        end.sent += n
        if end.counts_sends():
            self.total += n

    def received(self, end: End, n: int) -> None:
        end.received += n
        mirror = end.mirror
        if mirror is not None and mirror.counts_sends():
            self.total -= n

    def arrived(self, reading: Callable[[socket.socket], bool]) -> bool:
        """Every unread byte has arrived where it waits (see ``End.arrived``)."""
        return all(end.arrived(reading) for end in self.ends.values() if end.unread())

    def dialling(self) -> bool:
        """A connect of the loop's own to one of its servers is under way or not yet accepted."""
        return bool(self.connecting) or any(e.client and e.mirror is None and not e.orphan for e in self.ends.values())

    def close(self, end: End) -> None:
        end.sock = None
        mirror = end.mirror
        self.total -= end.unread() + (mirror.unread() if mirror is not None else 0)
        if mirror is not None:
            mirror.orphan = True
            mirror.mirror = None
        end.orphan = True
        end.mirror = None
        if self.ends.get(end.key) is end:
            del self.ends[end.key]


class CountingSocket(socket.socket):
    """A loop socket that reports every byte it sends and reads to the loop's ``Flight``."""

    flight: Flight
    end: End | None

    def send(self, data: Any, flags: int = 0) -> int:
        n = super().send(data, flags)
        if self.end is not None:
            self.flight.sent(self.end, n)
        return n

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        n = super().sendmsg(buffers, *args)
        if self.end is not None:
            self.flight.sent(self.end, n)
        return n

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        if self.end is not None:
            self.flight.received(self.end, len(data))
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        n = super().recv_into(buffer, nbytes, flags)
        if self.end is not None:
            self.flight.received(self.end, n)
        return n

    def close(self) -> None:
        if self.end is not None:
            self.flight.close(self.end)
            self.end = None
        super().close()
