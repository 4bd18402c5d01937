#!/usr/bin/env python3
"""Proxy-lab load client: bounded HTTPS load against the proxy frontend.

Every request gets its own TLS connection (so every request is a frontend
handshake and, through HAProxy, a backend connection): connect, send one
HTTP/1.1 GET without "Connection: close" (the backend keeps the connection
open, so the proxy is the side that closes it, as in the motivating problem),
read the response, send close_notify, close.

Each worker offers the session of its previous connection except on every
--new-session-every'th connection, so the frontend sees a mix of full and
resumed handshakes.  Bounded by --requests and by --max-seconds, whichever
comes first.  Prints one summary line on stdout:

    load requests=300 ok=300 errors=0 resumed=200 offered=200 seconds=4.2

and the first error, if any, on stderr.  --keylog writes the TLS secrets of
every connection (NSS key log format) for the lab's oracle.
"""

import argparse
import socket
import ssl
import sys
import threading
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: lab.tlsmon.test\r\nUser-Agent: tlsmon-lab\r\n\r\n"


def read_response(sock):
    """Reads one response: by Content-Length, or until the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(16384)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while length is None or len(body) < length:
        chunk = sock.recv(16384)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class Load:
    def __init__(self, args):
        self.args = args
        host, _, port = args.connect.rpartition(":")
        self.addr = (host, int(port))
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        if args.keylog:
            self.ctx.keylog_filename = args.keylog
        self.lock = threading.Lock()
        self.next = 0
        self.deadline = time.monotonic() + args.max_seconds
        self.stats = {"requests": 0, "ok": 0, "errors": 0, "resumed": 0, "offered": 0}
        self.first_error = None

    def take(self):
        """Claims the next request number, or None when the load is over."""
        with self.lock:
            if self.next >= self.args.requests or time.monotonic() >= self.deadline:
                return None
            self.next += 1
            return self.next

    def count(self, key, err=None):
        with self.lock:
            self.stats[key] += 1
            if err is not None and self.first_error is None:
                self.first_error = err

    def one(self, session):
        raw = socket.create_connection(self.addr, timeout=self.args.timeout)
        try:
            sock = self.ctx.wrap_socket(raw, server_hostname="lab.tlsmon.test", session=session)
        except BaseException:
            raw.close()
            raise
        try:
            sock.sendall(REQUEST)
            response = read_response(sock)
            if not response.startswith(b"HTTP/1.") or b" 200 " not in response.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"unexpected response: {response[:80]!r}")
            resumed = sock.session_reused
            new_session = sock.session
            try:
                # close_notify, then wait (bounded by the timeout) for the
                # proxy's.
                sock.unwrap().close()
            except (ssl.SSLError, OSError):
                pass
            return resumed, new_session
        finally:
            sock.close()

    def worker(self, index):
        session = None
        done = 0
        while True:
            number = self.take()
            if number is None:
                return
            offer = session if done % self.args.new_session_every != 0 else None
            done += 1
            if offer is not None:
                self.count("offered")
            try:
                resumed, session = self.one(offer)
                self.count("ok")
                if resumed:
                    self.count("resumed")
            except Exception as err:  # noqa: BLE001 - reported in the summary
                self.count("errors", f"worker {index}: {err!r}")
                session = None
            self.count("requests")
            if self.args.pause_ms:
                time.sleep(self.args.pause_ms / 1000)

    def run(self):
        threads = [
            threading.Thread(target=self.worker, args=(i,), daemon=True)
            for i in range(self.args.concurrency)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        summary = dict(self.stats)
        summary["seconds"] = round(time.monotonic() - started, 3)
        print("load " + " ".join(f"{k}={v}" for k, v in summary.items()), flush=True)
        if self.first_error is not None:
            print(f"first error: {self.first_error}", file=sys.stderr, flush=True)
        return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connect", required=True, help="host:port of the frontend")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--new-session-every", type=int, default=3)
    parser.add_argument("--pause-ms", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--keylog", help="append TLS secrets to this file (NSS key log)")
    args = parser.parse_args()
    if args.concurrency < 1 or args.new_session_every < 1 or args.requests < 0:
        parser.error("--concurrency and --new-session-every must be >= 1, --requests >= 0")
    summary = Load(args).run()
    sys.exit(0 if summary["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
