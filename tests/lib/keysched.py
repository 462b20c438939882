# SPDX-License-Identifier: ISC
"""Key schedule v2 (DESIGN.md), written again from RFC 5869 for the tests:
what the daemon must derive, computed independently of its C code."""
import hashlib
import hmac
import os
import socket
import struct

SALT = b"sakeyd-v2"


def hkdf(secret, info, length):
    """HKDF-SHA256 with salt "sakeyd-v2": length bytes of output keying material."""
    prk = hmac.new(SALT, secret, hashlib.sha256).digest()
    okm, block, i = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        okm += block
        i += 1
    return okm[:length]


def phase(secret, period):
    """A link's automatic phase (seconds), from its secret."""
    return int.from_bytes(hkdf(secret, b"sakeyd-v2 phase", 8), "big") % period


def spi_prefix(secret):
    """A link's automatic spi_prefix (24 bits, never 0), from its secret."""
    return (int.from_bytes(hkdf(secret, b"sakeyd-v2 spi", 4), "big") & 0xFFFFFF) or 1


def spi(prefix, epoch, gen=0):
    """The SPI of generation gen of an epoch's SA: prefix << 8 | gen << 4 | epoch mod 16."""
    return (prefix & 0xFFFFFF) << 8 | (gen & 0xF) << 4 | (epoch % 16)


def spi_epoch(spi_value, near):
    """The epoch an SPI names (it keeps the epoch mod 16): the one nearest to epoch near."""
    return near + (((spi_value & 0xF) - (near & 0xF) + 8) % 16) - 8


def spi_gen(spi_value):
    """The generation an SPI names."""
    return (spi_value >> 4) & 0xF


def inbound_epochs(link, t):
    """The inbound epochs of link's make-before-break window at Unix time t (DESIGN.md):
    e; e + 1 from T(e + 1) - lead; e - 1 until T(e) + grace. link: any object with period,
    phase, lead, grace and epoch(t)."""
    e = link.epoch(t)
    start, nxt = e * link.period + link.phase, (e + 1) * link.period + link.phase
    out = [e]
    if t >= nxt - link.lead:
        out.append(e + 1)
    if t < start + link.grace:
        out.append(e - 1)
    return out


def addr_bytes(ip):
    return socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)


def keymat(secret, src, dst, epoch, alg="aes-cbc-256-hmac-sha512", mode=1, length=96, gen=0):
    """The key material of generation gen of the ESP SA src -> dst of an epoch."""
    info = (b"sakeyd-v2 sa\0" + bytes([50, mode]) + alg.encode() + b"\0" + addr_bytes(src) +
            addr_bytes(dst) + struct.pack("!qB", epoch, gen))
    return hkdf(secret, info, length)


def fp_of(keymat_bytes):
    """The fingerprint of key material, as sactl shows it."""
    return hashlib.sha256(b"sakeyd-v2 fp\0" + keymat_bytes).hexdigest()[:16]


def key_fp(secret, src, dst, epoch, alg="aes-cbc-256-hmac-sha512", mode=1, length=96, gen=0):
    """The fingerprint of generation gen of the SA src -> dst of an epoch, as sactl shows it."""
    return fp_of(keymat(secret, src, dst, epoch, alg, mode, length, gen))


def write_secret(path, secret):
    """A secret file as the daemon wants it: hex, mode 0600, never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (secret.hex() + "\n").encode())
    os.close(fd)
