"""Carries the packets of a tun device to a peer over UDP and back: a
tunnel as WireGuard makes one, without the encryption, so that the TLS
inside stays readable to tlsmon on the tun device.

Usage: tun_relay.py DEVICE LOCAL_IP PEER_IP PORT
Runs in the namespace that holds DEVICE until killed.
"""

import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main():
    device, local, peer, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TUN | IFF_NO_PI))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((local, port))
    print("relaying", flush=True)
    while True:
        ready, _, _ = select.select([tun, udp], [], [])
        if tun in ready:
            udp.sendto(os.read(tun, 65535), (peer, port))
        if udp in ready:
            os.write(tun, udp.recv(65535))


if __name__ == "__main__":
    main()
