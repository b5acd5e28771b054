#!/usr/bin/env python3
"""Sends one hand-made TCP segment (raw socket) and reports whether anything came back.

    tcp-probe.py SRC DST SPORT DPORT FLAGS     FLAGS: e.g. A (ACK), PA, F, S
Prints "answered FLAGS" or "no answer" (1 s wait). Used to check that a TCP packet
which opens no connection (not a SYN) is dropped silently, with no RST.
"""
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    src, dst, sport, dport, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    bits = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}
    f = sum(bits[c] for c in flags)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, 12345, 67890 if f & 16 else 0, 5 << 4, f, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.bind((src, 0))
    s.settimeout(0.2)
    s.sendto(hdr, (dst, 0))
    end = time.time() + 1.0
    while time.time() < end:
        try:
            pkt, (peer, _) = s.recvfrom(65535)
        except socket.timeout:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        sp, dp = struct.unpack("!HH", pkt[ihl:ihl + 4])
        if peer == dst and sp == dport and dp == sport:
            got = pkt[ihl + 13]
            print("answered " + "".join(c for c, b in bits.items() if got & b))
            return
    print("no answer")


if __name__ == "__main__":
    main()
