"""An asyncio event loop whose clock jumps forward when nothing is left to do at the current instant.

``VirtualTimeLoop`` runs real sockets (the simulator and the engine talk HTTP and WebSocket over
loopback, exactly as in production) but its ``time()`` is virtual: it stands still while any work
is pending and, once everything is idle, jumps straight to the next timer. A test, the backtest
or the soak thus runs hours of exchange time in the wall time its CPU work takes, and what
happens no longer depends on how busy the machine is.

"Idle" means all of these at once:

* no callback is ready to run;
* no executor job (``run_in_executor``, ``asyncio.to_thread``, ``getaddrinfo``) is in flight;
* no byte is in flight between two sockets of this loop: every byte one end handed to the kernel
  has been read by the other end (counted in the loop's own sockets, so it does not depend on
  when the kernel delivers or acknowledges it), and no connect to one of its servers is pending;
* ``select`` with a zero timeout reports nothing.

With ``pace`` set, a jump waits until the wall clock has caught up with ``virtual / pace``: the
offline demo runs days of exchange time in minutes that a user can watch, yet no request is ever
late for its recvWindow, because work still takes no virtual time.

A peer that stops reading (a paused transport) keeps bytes in flight: once every unread byte is in
its reader's socket buffer or waits for a reader that is not reading, and ``select`` reports
nothing, the loop treats that as idle, as real time would pass over it. The test is on bytes, not
on wall time, so a machine too busy to deliver loopback bytes promptly does not make a jump come
early (a faulted backtest changed with the load when this was a 50 ms wall-clock rule).
``stuck_after_s`` of wall time without progress remains as a last resort (a connect that is
never accepted).
Processes outside the loop (a subprocess, another program on loopback) are not seen: code that
waits on them needs a real-time loop. Threads are seen only when started through
``run_in_executor`` (or ``asyncio.to_thread``): a library that hands work to its own thread pool
and waits with a timeout would see that timeout expire at once. A job's result reaches the loop at a
fixed point, the loop's next ``select``, which waits for the job (up to ``job_wait_s`` of wall
time), not whenever the thread happens to finish: a journal read done while the simulator's
frames of the same instant were being handled used to land among them at a point set by the
machine's load, and a faulted backtest's fills came out in another order.

Every timer of the loop (``asyncio.sleep``, ``wait_for`` timeouts, aiohttp's heartbeats and
timeouts) runs in virtual time, and so do ``aegis.clock.Clock`` and the simulator's clock, which
read ``loop.time()``.
Timers due at the same instant run in the order they were scheduled (asyncio leaves that order
to its heap's layout, which depends on unrelated timers and so on the machine's load).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import select
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures import Future as JobFuture
from concurrent.futures import wait as wait_jobs
from typing import Any, TypeVar

from aegis.virtualtime.flight import CountingSocket, Flight, addr

__all__ = ["VirtualTimeLoop", "call_after_instant", "run"]

T = TypeVar("T")


class _OrderedTimer(asyncio.TimerHandle):
    """A timer that, due at the same instant as another, runs in the order the two were scheduled.

    asyncio orders its timer heap by due time alone, and ``heapq`` pops equal keys in an order set
    by the heap's layout, i.e. by every timer pushed and popped before (aiohttp's read timeouts,
    re-armed per chunk the kernel happened to deliver). On virtual time many timers fall due at
    exactly one instant (every ``call_later(1e-6)`` of one instant, a backfill's burst of equity
    samples), so that order changed with the machine's load, and with it the run's results.
    """

    __slots__ = ("_order",)

    def __init__(
        self, when: float, callback: Callable[..., object], args: tuple[Any, ...], loop: Any, context: Any, seq: int
    ) -> None:
        super().__init__(when, callback, args, loop, context)
        self._order = (when, seq)  # the heap compares these: due time, then scheduling order

    # Only ``call_at`` below pushes to the loop's heap, so every timer compared here is one of ours.
    def __lt__(self, other: _OrderedTimer) -> bool:  # type: ignore[override]
        return self._order < other._order

    def __le__(self, other: _OrderedTimer) -> bool:  # type: ignore[override]
        return self._order <= other._order

    def __gt__(self, other: _OrderedTimer) -> bool:  # type: ignore[override]
        return self._order > other._order

    def __ge__(self, other: _OrderedTimer) -> bool:  # type: ignore[override]
        return self._order >= other._order


class _IdleAwareSelector(selectors.BaseSelector):
    """Wraps the loop's selector: a wait that would block becomes a jump of virtual time instead."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._real = real
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def _reading(self, sock: socket.socket) -> bool:
        key = self._real.get_map().get(sock)
        return key is not None and bool(key.events & selectors.EVENT_READ)

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if loop.executor_jobs and loop.settle_jobs():
            return self._real.select(0)  # their results are callbacks now: they run before time moves
        if timeout is not None and timeout <= 0:
            return self._real.select(0)
        flight = loop.flight
        stuck_since = time.monotonic()
        last = (flight.total, flight.connecting)
        while True:
            events = self._real.select(0)
            if events:
                return events
            if loop.executor_jobs:
                if loop.settle_jobs():
                    return self._real.select(0)
                # A job past job_wait_s: its thread wakes the loop through the self-pipe when done.
                events = self._real.select(0.05)
                if events:
                    return events
                continue
            now_busy = (flight.total, flight.connecting)
            if now_busy == (0, 0):
                break
            if not flight.connecting and flight.arrived(self._reading):
                # Every byte waits for a reader that does not read (select saw none readable).
                events = self._real.select(0)  # (or it landed after that select)
                if events:
                    return events
                loop.paused_jumps += 1
                break
            now = time.monotonic()
            if now_busy != last:
                stuck_since, last = now, now_busy
            elif now - stuck_since > loop.stuck_after_s:
                loop.stuck_jumps += 1
                break  # bytes that never reach their reader: real time would pass over them
            events = self._real.select(0.0002)
            if events:
                return events
        if timeout is None:
            return self._real.select(None)  # nothing scheduled at all: only I/O or a signal can wake us
        lead = loop.pacing_wait(timeout)
        if lead > 0:  # paced: the jump waits for the wall clock, serving outside I/O meanwhile
            events = self._real.select(lead)
            if events:
                return events
        loop.advance(timeout)
        loop.jumps += 1
        return []


def _hand_over(job: JobFuture[Any], future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    if job.cancelled():
        future.cancel()
    elif (exc := job.exception()) is not None:
        future.set_exception(exc)
    else:
        future.set_result(job.result())


# A whole number, as if the machine had been up a day (no code sees a loop clock near zero).
DEFAULT_START = 86_400.0


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop on virtual time (see the module docstring)."""

    def __init__(
        self, start: float | None = None, *, pace: float | None = None, stuck_after_s: float = 1.0
    ) -> None:
        """``pace``: at most this many virtual seconds per wall second (a demo a user watches);
        None runs as fast as the work allows (tests, the backtest). Either way time only moves
        when nothing is left to do, so work never takes virtual time. ``start`` defaults to a fixed
        instant, not the machine's clock: aiohttp rounds timeouts above 5 s up to whole loop
        seconds, so a start with a random fraction made two runs of one scenario differ."""
        self._virtual_now = DEFAULT_START if start is None else float(start)
        self.set_pace(pace)
        self.stuck_after_s = stuck_after_s
        self.job_wait_s = 1.0
        self._jobs: list[tuple[JobFuture[Any], asyncio.Future[Any], bool]] = []  # (job, future, waited for)
        self.jumps = 0
        self.paused_jumps = 0  # jumps with bytes waiting in a paused reader's buffer
        self.stuck_jumps = 0  # jumps after stuck_after_s of wall time with bytes not landed
        self.flight = Flight()
        self._timer_seq = itertools.count()
        super().__init__(_IdleAwareSelector(selectors.DefaultSelector(), self))

    def time(self) -> float:
        return self._virtual_now

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """A positive delay always lands in the future, however small: ``sleep(1e-15)`` must not
        run at the current instant, or code that sleeps "the rest" of an interval spins forever."""
        if delay > 0:
            now = self.time()
            return self.call_at(max(now + delay, math.nextafter(now, math.inf)), callback, *args, context=context)
        return super().call_later(delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        """``BaseEventLoop.call_at`` with a timer that keeps same-instant timers in scheduling order."""
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        if self.get_debug():
            self._check_thread()  # type: ignore[attr-defined]
        timer = _OrderedTimer(when, callback, args, self, context, next(self._timer_seq))
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def set_pace(self, pace: float | None) -> None:
        """Change the pace from now on (None: as fast as the work allows), e.g. to skip a quiet
        stretch of a benchmark unpaced and time what follows paced again."""
        if pace is not None and pace <= 0:
            raise ValueError("pace must be > 0")
        self.pace = pace
        self._pace_anchor = (self._virtual_now, time.monotonic())

    def pacing_wait(self, seconds: float) -> float:
        """Wall seconds to wait before virtual time may move ``seconds`` on (0 when unpaced or behind)."""
        if self.pace is None:
            return 0.0
        v0, w0 = self._pace_anchor
        due_wall = w0 + (self._virtual_now + seconds - v0) / self.pace
        lead = due_wall - time.monotonic()
        if lead < -1.0:  # far behind (a busy machine): do not rush to catch up later
            self._pace_anchor = (self._virtual_now, time.monotonic())
        return max(0.0, lead)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (never back); timers that fall due run on the next iteration."""
        if seconds > 0:
            self._virtual_now += seconds

    # --- work the loop waits for without a timer -------------------------------------------

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        """``BaseEventLoop.run_in_executor``, but the result is handed over by ``settle_jobs``."""
        self._check_closed()  # type: ignore[attr-defined]
        if executor is None:
            self._check_default_executor()  # type: ignore[attr-defined]
            executor = self._default_executor  # type: ignore[has-type]
            if executor is None:
                executor = self._default_executor = ThreadPoolExecutor(thread_name_prefix="asyncio")
        job = executor.submit(func, *args)
        future: asyncio.Future[T] = self.create_future()
        self._jobs.append((job, future, False))
        job.add_done_callback(lambda _: self._write_to_self())  # type: ignore[attr-defined]
        return future

    @property
    def executor_jobs(self) -> int:
        """Executor jobs whose result the loop has not handed over yet."""
        return len(self._jobs)

    def settle_jobs(self) -> bool:
        """Hand the results of finished executor jobs to their futures, in the order the jobs were
        started, first waiting for each one still running (at most ``job_wait_s`` of wall time in
        all, once per job: a job that waits on this very loop, such as a thread posting to one of
        its servers, is then handed over whenever it ends). True if any was handed over."""
        deadline: float | None = None
        pending: list[tuple[JobFuture[Any], asyncio.Future[Any], bool]] = []
        settled = False
        for job, future, waited in self._jobs:
            if future.cancelled():
                job.cancel()
            if not job.done() and not waited:
                deadline = deadline or time.monotonic() + self.job_wait_s
                self._wait_job(job, deadline)
            if not job.done():
                pending.append((job, future, True))
                continue
            _hand_over(job, future)
            settled = True
        self._jobs = pending
        return settled

    def _wait_job(self, job: JobFuture[Any], deadline: float) -> None:
        """Wait for ``job`` until ``deadline``, or until someone outside the loop's own sockets
        dials one of its servers (the job itself, most likely, waiting on the loop)."""
        while not job.done() and (left := deadline - time.monotonic()) > 0:
            wait_jobs([job], timeout=min(left, 0.005))
            servers = list(self.flight.listening.values())
            if not job.done() and servers and not self.flight.dialling():
                if select.select(servers, [], [], 0)[0]:
                    return  # a pending accept none of the loop's own sockets asked for

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        ours = addr(address) in self.flight.listening
        self.flight.connecting += ours
        try:
            await super().sock_connect(sock, address)
        finally:
            self.flight.connecting -= ours

    def _start_serving(self, protocol_factory: Any, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        self.flight.listening[addr(sock.getsockname())] = sock
        super()._start_serving(protocol_factory, sock, *args, **kwargs)  # type: ignore[misc]

    def _stop_serving(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.flight.listening.pop(addr(sock.getsockname()), None)
        super()._stop_serving(sock)  # type: ignore[misc]

    def _make_socket_transport(self, sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
        return super()._make_socket_transport(self._counting(sock), *args, **kwargs)  # type: ignore[misc]

    def _counting(self, sock: socket.socket) -> socket.socket:
        """The same connection as a socket that counts its bytes, if it touches one of our servers."""
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return sock
        try:
            local, peer = addr(sock.getsockname()), addr(sock.getpeername())
        except OSError:
            return sock
        flight = self.flight
        client = peer in flight.listening  # we dialled one of our servers
        if not client and local not in flight.listening:
            return sock  # a connection to the outside world
        counting = CountingSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        counting.flight = flight
        counting.end = flight.register(local, peer, client=client)
        counting.end.sock = counting
        return counting


def run(main: Any, *, pace: float | None = None, debug: bool | None = None) -> Any:
    """``asyncio.run`` on a fresh ``VirtualTimeLoop`` (paced or not)."""
    with asyncio.Runner(debug=debug, loop_factory=lambda: VirtualTimeLoop(pace=pace)) as runner:
        return runner.run(main)


def call_after_instant(callback: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
    """Run ``callback(*args)`` once the events of the current instant are in.

    A candle's close and a fill on its path reach the engine at the same exchange instant, on two
    sockets, in either order. On virtual time (backtest, run --sim) a positive delay runs only once
    everything due at the instant is done, so what the callback sees no longer depends on which
    socket the loop read first; on a real loop it is just "next".
    """
    return asyncio.get_running_loop().call_later(1e-6, callback, *args)
