"""Endpoints that fail on purpose, for the fault tests.

- ``tarpit``: a dead endpoint of the worst kind, a listening TCP socket that is
  never accepted from. The kernel completes every client's handshake (up to the
  backlog), so a connect succeeds and then nothing ever answers: only the
  client's own read timeouts end the wait, exactly as with a frozen server.
- ``half_dead_s3``: an S3 endpoint that answers ListBuckets at once and then never
  answers a request about a bucket, as a store behind a load balancer whose
  backends died. A client that lists first and then fans out over many buckets
  gets as far as the fan-out, and every bucket's call then hangs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIST_BUCKETS = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    b"<Owner><ID>faults</ID><DisplayName>faults</DisplayName></Owner><Buckets></Buckets>"
    b"</ListAllMyBucketsResult>"
)


@contextlib.contextmanager
def tarpit(backlog: int = 1024) -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never answers; yields the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)
        yield int(sock.getsockname()[1])


@contextlib.contextmanager
def half_dead_s3() -> Iterator[str]:
    """An S3 endpoint that lists (no buckets) and hangs on every bucket request; yields its URL."""
    released = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def _hang_or_list(self) -> None:
            if self.command == "GET" and self.path.split("?")[0] == "/":
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(LIST_BUCKETS)))
                self.end_headers()
                self.wfile.write(LIST_BUCKETS)
                return
            released.wait()  # never answered while the test runs

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _hang_or_list  # noqa: N815 - http.server names

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="half-dead-s3", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        released.set()
        server.shutdown()
        server.server_close()
