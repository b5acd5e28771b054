#!/usr/bin/env python3
"""A tiny HTTP/1.1 server for the labs: answers every GET with its name as the body.

    httpd.py ADDRESS PORT NAME

Threaded, no DNS look-ups (python's http.server calls getfqdn on bind, which waits
on resolvers a lab has no access to), keeps connections alive when asked so a client
can send several requests over one TCP connection.
"""
import socket
import sys
import threading


def serve(conn, name):
    body = (name + "\n").encode()
    buf = b""
    try:
        conn.settimeout(30)
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            keep = any(l.lower().startswith("connection:") and "keep-alive" in l.lower() for l in lines[1:])
            hdr = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nServer: rvs-lab\r\n"
                "Connection: %s\r\n\r\n" % (len(body), "keep-alive" if keep else "close")
            )
            conn.sendall(hdr.encode() + body)
            if not keep:
                return
    except OSError:
        pass
    finally:
        conn.close()


def main():
    addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        # Beside the same port's IPv4 server.
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(128)
    print("serving %s on %s port %d" % (name, addr, port), flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


if __name__ == "__main__":
    main()
