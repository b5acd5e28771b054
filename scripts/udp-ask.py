#!/usr/bin/env python3
"""Sends one UDP datagram and prints the answer's sender name (the part before ":").

    udp-ask.py ADDRESS PORT [TEXT]      exit 1 when no answer within 2 s
"""
import socket
import sys


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    text = sys.argv[3] if len(sys.argv) > 3 else "ping"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(text.encode(), (addr, port))
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        print("no answer", file=sys.stderr)
        sys.exit(1)
    print(data.decode().split(":", 1)[0])


if __name__ == "__main__":
    main()
