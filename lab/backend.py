#!/usr/bin/env python3
"""Proxy-lab backend (c): a TLS HTTP/1.1 server in the style of a small
event-loop server, using only the standard library.

What matters for the lab is how it ends connections, because OpenSSL keeps a
server-side session cached only if the connection that used it was shut down
with a sent close_notify (SSL_free -> ssl_clear_bad_session otherwise):

* the peer closed cleanly (close_notify, or EOF as Python's ssl reports it):
  ``unwrap()`` sends our close_notify, then the socket is closed -> the
  session stays in the cache and can be resumed;
* the peer reset the connection (TCP RST): the socket is closed without
  ``unwrap()`` -> OpenSSL frees the connection with no close_notify sent and
  drops the session from the cache; the next offer of it is rejected.

Python (3.10+ with OpenSSL 3) reports a reset during an SSL read as
SSLEOFError, and with the default suppress_ragged_eofs=True even as an empty
read, exactly like a clean EOF.  A server that then calls unwrap() sets
OpenSSL's "sent shutdown" flag (the write itself fails) and the session
survives the reset.  So this server reads with suppress_ragged_eofs=False and,
on an EOF without close_notify, asks the kernel whether the connection was
reset (TCP_INFO state CLOSE) or half-closed (CLOSE_WAIT).

Session tickets are off (OP_NO_TICKET), so TLS <= 1.2 resumption uses the
server's session-ID cache.  --keylog writes the TLS secrets of every
connection (NSS key log format) for the lab's oracle; --session-timeout sets
the session cache's timeout (see set_session_timeout).  One line per
connection goes to stdout:

    conn peer=10.210.2.1:40122 version=TLSv1.2 resumed=1 requests=1 close=clean

and a summary line when it gets SIGTERM or SIGINT.
"""

import argparse
import ctypes
import selectors
import signal
import socket
import ssl
import sys

BODY = b"hello from the python backend\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"\r\n" + BODY
)
# A request head larger than this is answered by closing the connection.
MAX_HEAD = 16 * 1024
# tcpi_state values (include/net/tcp_states.h).
TCP_CLOSE = 7
VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


def set_session_timeout(ctx, seconds):
    """Sets the session cache timeout of ``ctx``'s SSL_CTX, as nginx's
    ssl_session_timeout does (SSL_CTX_set_timeout).

    Python's ssl module has no setter for it, so this reaches the SSL_CTX
    through ctypes: CPython's _ssl context object holds its SSL_CTX pointer
    right after the object header (PySSLContext in Modules/_ssl.c).  The
    pointer is checked before use: OpenSSL must report the default timeout
    for it, and the new value afterwards; otherwise this fails loudly.
    """
    # The libssl this Python's _ssl module is linked with (Debian 12:
    # OpenSSL 3), by soname: already loaded, so dlopen finds it.
    libssl = ctypes.CDLL("libssl.so.3")
    libssl.SSL_CTX_get_timeout.restype = ctypes.c_long
    libssl.SSL_CTX_get_timeout.argtypes = [ctypes.c_void_p]
    libssl.SSL_CTX_set_timeout.restype = ctypes.c_long
    libssl.SSL_CTX_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_long]
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    ssl_ctx = ctypes.c_void_p.from_address(id(ctx) + header).value
    # OpenSSL 3.0's default for a TLS server method (ssl_get_default_timeout).
    if not ssl_ctx or libssl.SSL_CTX_get_timeout(ssl_ctx) != 7200:
        raise SystemExit("cannot find the SSL_CTX of this Python's ssl context")
    libssl.SSL_CTX_set_timeout(ssl_ctx, seconds)
    if libssl.SSL_CTX_get_timeout(ssl_ctx) != seconds:
        raise SystemExit("SSL_CTX_set_timeout did not take")


def tcp_state(sock):
    """The kernel's TCP state of the socket (first byte of struct tcp_info)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return TCP_CLOSE


class Conn:
    """One accepted connection and where it is in its life."""

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.handshaken = False
        self.inbuf = b""
        self.outbuf = b""
        self.requests = 0


class Server:
    def __init__(self, args):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(args.cert, args.key)
        self.ctx.maximum_version = VERSIONS[args.max_tls]
        self.ctx.options |= ssl.OP_NO_TICKET
        if args.keylog:
            self.ctx.keylog_filename = args.keylog
        if args.session_timeout:
            set_session_timeout(self.ctx, args.session_timeout)
        self.listener = socket.create_server((args.host, args.port), backlog=128)
        self.listener.setblocking(False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        self.stats = {
            "connections": 0,
            "resumed": 0,
            "clean": 0,
            "eof": 0,
            "reset": 0,
            "error": 0,
        }
        self.running = True

    def log(self, text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def serve(self):
        self.log(f"listening on {self.listener.getsockname()[0]}:{self.listener.getsockname()[1]}")
        while self.running:
            for key, _ in self.sel.select(timeout=0.5):
                if key.data is None:
                    self.accept()
                else:
                    self.step(key.data)
        self.log("summary " + " ".join(f"{k}={v}" for k, v in self.stats.items()))

    def accept(self):
        try:
            raw, peer = self.listener.accept()
        except BlockingIOError:
            return
        raw.setblocking(False)
        tls = self.ctx.wrap_socket(
            raw, server_side=True, do_handshake_on_connect=False, suppress_ragged_eofs=False
        )
        conn = Conn(tls, f"{peer[0]}:{peer[1]}")
        self.stats["connections"] += 1
        self.sel.register(tls, selectors.EVENT_READ, conn)

    def want(self, conn, events):
        self.sel.modify(conn.sock, events, conn)

    def step(self, conn):
        try:
            if not conn.handshaken:
                conn.sock.do_handshake()
                conn.handshaken = True
            if conn.outbuf:
                self.flush(conn)
                return
            self.read(conn)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
            write = isinstance(want, ssl.SSLWantWriteError)
            self.want(conn, selectors.EVENT_WRITE if write else selectors.EVENT_READ)
        except ConnectionResetError:
            # The peer reset the connection: drop it like most servers do,
            # without a close_notify of our own.
            self.finish(conn, "reset", clean=False)
        except ssl.SSLEOFError:
            # The TCP stream ended without close_notify: a reset, or a FIN.
            if tcp_state(conn.sock) == TCP_CLOSE:
                self.finish(conn, "reset", clean=False)
            else:
                self.finish(conn, "eof", clean=True)
        except (ssl.SSLError, OSError) as err:
            self.finish(conn, f"error({err.__class__.__name__})", clean=False)

    def read(self, conn):
        while True:
            data = conn.sock.recv(16384)
            if not data:
                # close_notify from the peer: answer with ours.
                self.finish(conn, "clean", clean=True)
                return
            conn.inbuf += data
            while b"\r\n\r\n" in conn.inbuf:
                # Requests have no body: GET only.
                _, conn.inbuf = conn.inbuf.split(b"\r\n\r\n", 1)
                conn.requests += 1
                conn.outbuf += RESPONSE
            if len(conn.inbuf) > MAX_HEAD:
                self.finish(conn, "error(head too large)", clean=True)
                return
            if conn.outbuf:
                self.flush(conn)
                return

    def flush(self, conn):
        while conn.outbuf:
            sent = conn.sock.send(conn.outbuf)
            conn.outbuf = conn.outbuf[sent:]
        self.want(conn, selectors.EVENT_READ)

    def finish(self, conn, how, clean):
        self.sel.unregister(conn.sock)
        resumed = 0
        version = "-"
        timeout = "-"
        if conn.handshaken:
            resumed = int(conn.sock.session_reused)
            version = conn.sock.version() or "-"
            session = conn.sock.session
            timeout = session.timeout if session is not None else "-"
        if clean:
            try:
                # Sends close_notify; with a non-blocking socket it does not
                # wait for the peer's (SSLWantReadError) - that is fine.
                conn.sock.unwrap().close()
            except (ssl.SSLError, OSError):
                conn.sock.close()
        else:
            conn.sock.close()
        key = how if how in self.stats else "error"
        self.stats[key] += 1
        if conn.handshaken:
            self.stats["resumed"] += resumed
        self.log(
            f"conn peer={conn.peer} version={version} resumed={resumed} "
            f"requests={conn.requests} close={how} session_timeout={timeout}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--max-tls", choices=sorted(VERSIONS), default="1.2")
    parser.add_argument("--keylog", help="append TLS secrets to this file (NSS key log)")
    parser.add_argument(
        "--session-timeout", type=int, default=0, help="session cache timeout in seconds"
    )
    args = parser.parse_args()
    server = Server(args)

    def stop(_signum, _frame):
        server.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve()


if __name__ == "__main__":
    main()
