#!/usr/bin/env python3
"""User-space IPIP decapsulator for the tun lab's real servers.

    ipip-decap.py TUN_NAME

This kernel has no ipip module, so a real server of a TUN-forwarded service takes
the tunnel apart itself: a raw IPPROTO_IPIP socket receives the director's packets
(outer DIP -> RIP, protocol 4), and the inner packet (client -> VIP) is written to a
TUN device, where the kernel receives it as if it had arrived there. The VIP lives
on lo; the real server answers the client directly from the VIP.
"""
import fcntl
import os
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main():
    name = sys.argv[1]
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    print("decapsulating IPIP into %s" % name, flush=True)
    while True:
        pkt = raw.recv(65535)
        if len(pkt) < 20:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        inner = pkt[ihl:]
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            os.write(tun, inner)


if __name__ == "__main__":
    main()
