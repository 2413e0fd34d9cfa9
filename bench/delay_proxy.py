"""A TCP forwarder that delays each direction, standing in for a network (issue 15).

    python -m bench.delay_proxy --listen 6543 --target 5432 --delay-ms 0.5

Every chunk read from either side is written to the other ``--delay-ms``
after it arrived; chunks in flight overlap, as on a link with that one-way
latency. Point DATABASE_URL at the listening port to measure what a round
trip to a PostgreSQL on another host costs a heal (``bench.heal_path``).
asyncio's timer rounds short sleeps up to the event loop's millisecond, so
0.5 ms each way measures as ~2.5 ms a round trip; ``tc netem`` is the exact
tool where the kernel has it.
"""

from __future__ import annotations

import argparse
import asyncio


async def _forward(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def deliver() -> None:
        while (item := await chunks.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    delivering = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            chunks.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    chunks.put_nowait(None)
    await delivering


async def proxy_serve(listen: int, target: int, delay: float, host: str = "127.0.0.1") -> None:
    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, target)
        await asyncio.gather(
            _forward(client_reader, server_writer, delay),
            _forward(server_reader, client_writer, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, host, listen)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--listen", type=int, default=6543)
    parser.add_argument("--target", type=int, default=5432)
    parser.add_argument("--delay-ms", type=float, default=0.5, help="one-way delay")
    args = parser.parse_args()
    asyncio.run(proxy_serve(args.listen, args.target, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
