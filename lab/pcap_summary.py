#!/usr/bin/env python3
"""Counts what a capture shows per TLS server port, with tshark: TCP
connections, RSTs and alert records (after the handshake: encrypted
close_notify) from each side, and ServerHellos split into full and resumed.
The independent check of HAProxy's log in the proxy lab (docs/proxy-lab.md).
Stdlib only.  Usage:

    pcap_summary.py CAPTURE --port 8443 --port 8444 --port 8445

"client" is the side that connected to the port: HAProxy on the
backend-facing interface, the load client on the client-facing one.

A ServerHello counts as resumed when
* TLS 1.3 (it carries supported_versions): it carries pre_shared_key;
* TLS <= 1.2: it echoes the non-empty session ID the client offered, or no
  Certificate follows it (the abbreviated handshake, RFC 5246 7.3).
"""

import argparse
import collections
import json
import subprocess

FIELDS = [
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.reset",
    "tls.record.content_type",
    "tls.handshake.type",
    "tls.handshake.session_id",
    "tls.handshake.extension.type",
]
EXT_PRE_SHARED_KEY = "41"
EXT_SUPPORTED_VERSIONS = "43"


def rows(path, ports):
    cmd = ["tshark", "-r", path, "-n", "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for port in ports:
        cmd += ["-d", f"tcp.port=={port},tls"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        values = line.split("\t")
        values += [""] * (len(FIELDS) - len(values))
        yield dict(zip(FIELDS, values))


def split(value):
    return [v for v in value.split(",") if v]


def summarize(path, ports):
    counts = collections.defaultdict(collections.Counter)
    streams = {}
    for row in rows(path, ports):
        src, dst = int(row["tcp.srcport"] or 0), int(row["tcp.dstport"] or 0)
        if dst in ports:
            port, side = dst, "client"
        elif src in ports:
            port, side = src, "server"
        else:
            continue
        c = counts[port]
        stream = streams.setdefault(row["tcp.stream"], {"port": port})
        if row["tcp.flags.syn"] == "1" and row["tcp.flags.ack"] == "0":
            c["connections"] += 1
        if row["tcp.flags.reset"] == "1":
            c[f"rst_from_{side}"] += 1
        c[f"alert_records_from_{side}"] += split(row["tls.record.content_type"]).count("21")
        # session_id occurs once per hello, in the order of the hellos.
        ids = iter(row["tls.handshake.session_id"].split(","))
        for hs in split(row["tls.handshake.type"]):
            sid = next(ids, "") if hs in ("1", "2") else ""
            if hs == "1" and side == "client":
                c["client_hellos"] += 1
                stream["offered_id"] = sid
            elif hs == "2" and side == "server":
                stream["server_hello_id"] = sid
                stream["extensions"] = split(row["tls.handshake.extension.type"])
            elif hs == "11" and side == "server":
                stream["certificate"] = True
    for stream in streams.values():
        if "server_hello_id" not in stream:
            continue
        c = counts[stream["port"]]
        extensions = stream["extensions"]
        if EXT_SUPPORTED_VERSIONS in extensions:
            resumed = EXT_PRE_SHARED_KEY in extensions
        else:
            offered = stream.get("offered_id", "")
            echoed = bool(offered) and offered == stream["server_hello_id"]
            resumed = echoed or not stream.get("certificate")
        c["server_hellos_resumed" if resumed else "server_hellos_full"] += 1
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("--port", type=int, action="append", required=True)
    args = parser.parse_args()
    counts = summarize(args.capture, set(args.port))
    for port in sorted(counts):
        print(json.dumps({"port": port, **dict(sorted(counts[port].items()))}), flush=True)


if __name__ == "__main__":
    main()
