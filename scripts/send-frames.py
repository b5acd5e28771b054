#!/usr/bin/env python3
"""send-frames.py IFACE [COUNT]: sends each hex-encoded Ethernet frame read from
stdin (one per line) COUNT times (default 1) on IFACE through a raw packet socket,
as it is: the tests' way of putting malformed frames on a lab's wire."""
import socket
import sys
import time

iface = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
sent = 0
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    frame = bytes.fromhex(line)
    for _ in range(count):
        s.send(frame)
        sent += 1
        time.sleep(0.001)
print(f"sent {sent} frames on {iface}")
