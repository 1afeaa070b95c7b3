"""On virtual time, what a run does must not depend on how fast the machine's threads and kernel are.

A faulted backtest changed with the load: a journal read on a worker thread landed among the
instant's frames wherever the thread happened to finish, and a wall-clock rule let time jump while
loopback bytes were still on their way. These tests pin both: a job's result lands at the same
point whatever the thread takes, and time jumps past a paused reader at once, on bytes, not on the
wall clock.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from aegis import virtualtime
from aegis.virtualtime import VirtualTimeLoop

pytestmark = pytest.mark.wallclock  # each test runs its own fresh virtual-time loops


def _landing_step(thread_takes_s: float) -> int:
    """The step of a chain of same-instant callbacks at which an executor job's result arrives."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        steps: list[int] = []
        landed: list[int] = []
        chain_done = loop.create_future()

        def step(n: int) -> None:
            steps.append(n)
            if n < 300:
                loop.call_soon(step, n + 1)
            else:
                chain_done.set_result(None)

        job = loop.run_in_executor(None, time.sleep, thread_takes_s)
        job.add_done_callback(lambda _: landed.append(len(steps)))
        loop.call_soon(step, 0)
        await job
        await chain_done
        return landed[0]

    result: int = virtualtime.run(main())
    return result


def test_an_executor_result_lands_at_the_same_point_whatever_the_thread_takes() -> None:
    assert {_landing_step(s) for s in (0.0, 0.03, 0.0, 0.06)} == {_landing_step(0.0)}


def test_time_jumps_past_a_paused_reader_at_once() -> None:
    async def main() -> VirtualTimeLoop:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        loop.stuck_after_s = 30.0  # only the byte count may let time move, never the wall clock

        class Paused(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.ReadTransport)
                transport.pause_reading()

        server = await loop.create_server(Paused, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        writer, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        assert isinstance(writer, asyncio.WriteTransport)
        writer.write(b"x" * (4 << 20))  # more than the kernel's buffers hold: some never leave
        started, wall = loop.time(), time.monotonic()
        await asyncio.sleep(60)
        assert loop.time() - started >= 60 and time.monotonic() - wall < 10
        writer.close()
        server.close()
        return loop

    loop = virtualtime.run(main())
    assert loop.paused_jumps >= 1 and loop.stuck_jumps == 0


def test_a_job_that_waits_on_the_loop_is_not_waited_for() -> None:
    """A thread posting to one of the loop's own servers (an alert to a local receiver) needs the
    loop to run: the loop stops waiting for it as soon as the thread dials."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        loop.job_wait_s = 30.0

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(4))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def dial() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
                conn.sendall(b"ping")
                return conn.recv(4)

        wall = time.monotonic()
        assert await loop.run_in_executor(None, dial) == b"ping"
        server.close()
        return time.monotonic() - wall

    assert virtualtime.run(main()) < 10  # not the 30 s job_wait_s
