#!/usr/bin/env python3
"""A TCP proxy on loopback that adds a fixed delay to every request, as a remote object
store's round trip does.

    delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS COUNT_FILE

For each connection, data from the client is held for DELAY_MS whenever it starts a new
request: the first bytes, and the first bytes after the server has answered (HTTP/1.1
keep-alive sends one request at a time per connection). Bytes of a request already under
way (an upload's body) pass at once, so the delay is per request, not per packet. The
number of requests seen so far is rewritten to COUNT_FILE after each one, so a benchmark
can read it before and after a phase. Loopback only.
"""
import asyncio
import sys

LISTEN, TARGET, DELAY_MS, COUNT_FILE = (
    int(sys.argv[1]),
    int(sys.argv[2]),
    int(sys.argv[3]),
    sys.argv[4],
)
requests = 0


def counted():
    global requests
    requests += 1
    with open(COUNT_FILE, "w") as f:
        f.write(f"{requests}\n")


async def handle(client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        client_writer.close()
        return
    # True when the next client bytes start a new request.
    state = {"new_request": True}

    async def upstream():
        while True:
            data = await client_reader.read(65536)
            if not data:
                break
            if state["new_request"]:
                state["new_request"] = False
                counted()
                await asyncio.sleep(DELAY_MS / 1000)
            server_writer.write(data)
            await server_writer.drain()
        server_writer.close()

    async def downstream():
        while True:
            data = await server_reader.read(65536)
            if not data:
                break
            state["new_request"] = True
            client_writer.write(data)
            await client_writer.drain()
        client_writer.close()

    await asyncio.gather(upstream(), downstream(), return_exceptions=True)


async def main():
    with open(COUNT_FILE, "w") as f:
        f.write("0\n")
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    async with server:
        await server.serve_forever()


asyncio.run(main())
