"""A minimal single-user server stand-in for benchmarks/hub_load.py: it passes the hub's server checks.

It listens where JupyterHub says ($JUPYTERHUB_SERVICE_URL), answers every GET
with 200 and a JSON body shaped like jupyter_server's `/api/status`, and exits on
SIGTERM. Standard library only, no auth: the load test measures the hub and the
proxy, not this process. Arguments the spawner passes are ignored.
"""

import asyncio
import datetime
import json
import os
import signal
from urllib.parse import urlparse

STARTED = datetime.datetime.now(datetime.timezone.utc).isoformat()


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            body = json.dumps({"started": STARTED, "last_activity": STARTED, "connections": 0, "kernels": 0}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL") or "http://127.0.0.1:8888/")
    server = await asyncio.start_server(handle, url.hostname or "127.0.0.1", url.port or 8888)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
