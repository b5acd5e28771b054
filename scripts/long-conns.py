#!/usr/bin/env python3
"""long-conns.py ADDRESS PORT N SECONDS [INTERVAL]: N long-lived HTTP/1.1 keep-alive
connections to ADDRESS:PORT, each sending a small request every INTERVAL seconds
(default 0.1) and reading its answer, for SECONDS. A request may wait (a failover
in progress: TCP retransmits it) up to 20 s; one that gets no answer by then, or a
connection reset or closed, counts against it. Prints one JSON line:
{"conns", "opened", "requests_ok", "failed_requests", "resets", "longest_wait_s",
 "servers": {name: requests}}."""
import json
import socket
import sys
import threading
import time

addr, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
interval = float(sys.argv[5]) if len(sys.argv) > 5 else 0.1
REQ = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n" % addr).encode()
lock = threading.Lock()
stats = {"conns": n, "opened": 0, "requests_ok": 0, "failed_requests": 0, "resets": 0, "longest_wait_s": 0.0}
servers = {}


def read_answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionResetError("closed")
        body += chunk
    return body[:length].decode().strip()


def one(end):
    try:
        s = socket.create_connection((addr, port), timeout=10)
    except OSError:
        with lock:
            stats["failed_requests"] += 1
        return
    s.settimeout(20)
    with lock:
        stats["opened"] += 1
    try:
        while time.time() < end:
            t0 = time.time()
            s.sendall(REQ)
            name = read_answer(s)
            waited = time.time() - t0
            with lock:
                stats["requests_ok"] += 1
                stats["longest_wait_s"] = max(stats["longest_wait_s"], round(waited, 3))
                servers[name] = servers.get(name, 0) + 1
            time.sleep(interval)
    except socket.timeout:
        with lock:
            stats["failed_requests"] += 1
    except OSError:
        with lock:
            stats["resets"] += 1
    finally:
        s.close()


end = time.time() + secs
threads = [threading.Thread(target=one, args=(end,)) for _ in range(n)]
for t in threads:
    t.start()
    time.sleep(0.005)
for t in threads:
    t.join()
stats["servers"] = servers
print(json.dumps(stats), flush=True)
