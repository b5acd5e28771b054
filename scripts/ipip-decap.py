#!/usr/bin/env python3
"""User-space tunnel decapsulator for the tun and tun6 labs' real servers.

    ipip-decap.py TUN_NAME [6]

This kernel has neither the ipip nor the ip6_tunnel module, so a real server of a
TUN-forwarded service takes the tunnel apart itself: a raw socket receives the
director's packets (IPv4: outer DIP -> RIP, protocol 4; with 6: IPv6-in-IPv6,
next header 41, RFC 2473), and the inner packet (client -> VIP) is written to a
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
    six = len(sys.argv) > 2 and sys.argv[2] == "6"
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    if six:
        # An IPv6 raw socket hands over what follows the outer header: the inner packet.
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
    print("decapsulating %s into %s" % ("IPv6-in-IPv6" if six else "IPIP", name), flush=True)
    while True:
        pkt = raw.recv(65535)
        if six:
            inner = pkt
            if len(inner) >= 40 and inner[0] >> 4 == 6:
                os.write(tun, inner)
            continue
        if len(pkt) < 20:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        inner = pkt[ihl:]
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            os.write(tun, inner)


if __name__ == "__main__":
    main()
