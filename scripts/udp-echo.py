#!/usr/bin/env python3
"""UDP echo server for the labs: answers every datagram with "NAME: <datagram>".

    udp-echo.py ADDRESS PORT NAME
"""
import socket
import sys


def main():
    addr, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("udp echo %s on %s:%d" % (name, addr, port), flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(name.encode() + b": " + data, peer)


if __name__ == "__main__":
    main()
