#!/usr/bin/env python3
"""A TLS terminator for tests: accepts TLS connections on one loopback port and forwards the
plain bytes to another, as a load balancer or a TLS sidecar in front of a broker would.

    tls_front.py LISTEN_PORT TARGET_PORT CERT_PEM KEY_PEM

Used by scripts/test.sh to put TLS in front of tansu, so the pipeline's Kafka clients are tested
with `security.protocol = "SSL"` (certificate checked against a CA, host name verified).
"""

import asyncio
import ssl
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    listen, target, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)

    async def serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, broker_w), pipe(broker_r, client_w))

    server = await asyncio.start_server(serve, "127.0.0.1", listen, ssl=context)
    print(f"tls_front: TLS on 127.0.0.1:{listen} -> 127.0.0.1:{target}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
