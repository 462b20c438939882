# SPDX-License-Identifier: ISC
"""Key schedule v1 (DESIGN.md), written again from RFC 5869 for the tests:
what the daemon must derive, computed independently of its C code."""
import hashlib
import hmac
import os
import socket
import struct


def hkdf(secret, info, length):
    """HKDF-SHA256 with salt "sakeyd-v1": length bytes of output keying material."""
    prk = hmac.new(b"sakeyd-v1", secret, hashlib.sha256).digest()
    okm, block, i = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
        i += 1
    return okm[:length]


def phase(secret, period):
    """A link's automatic phase (seconds), from its secret."""
    return int.from_bytes(hkdf(secret, b"sakeyd-v1 phase", 8), "big") % period


def spi_prefix(secret):
    """A link's automatic spi_prefix (24 bits, never 0), from its secret."""
    return (int.from_bytes(hkdf(secret, b"sakeyd-v1 spi", 4), "big") & 0xFFFFFF) or 1


def addr_bytes(ip):
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


def keymat(secret, src, dst, epoch, alg="aes-cbc-256-hmac-sha512", mode=1, length=96):
    """The key material of the ESP SA src -> dst of an epoch."""
    info = (b"sakeyd-v1 sa\0" + bytes([50, mode]) + alg.encode() + b"\0" + addr_bytes(src) +
            addr_bytes(dst) + struct.pack("!q", epoch))
    return hkdf(secret, info, length)


def key_fp(secret, src, dst, epoch, alg="aes-cbc-256-hmac-sha512", mode=1, length=96):
    """The fingerprint of the SA src -> dst of an epoch, as sactl shows it."""
    return hashlib.sha256(b"sakeyd-v1 fp\0" +
                          keymat(secret, src, dst, epoch, alg, mode, length)).hexdigest()[:16]


def write_secret(path, secret):
    """A secret file as the daemon wants it: hex, mode 0600, never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (secret.hex() + "\n").encode())
    os.close(fd)
