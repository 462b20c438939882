# SPDX-License-Identifier: ISC
"""What `ip -s xfrm state` prints, as data."""
import re


def parse_states(out):
    """SAs of `ip -s xfrm state` output: a list of dicts with src, dst, packets and,
    where printed, spi, enc, auth, icv (bits), esn, window."""
    sas, cur = [], None
    for line in out.splitlines():
        m = re.match(r"src (\S+) dst (\S+)", line)
        if m:
            cur = {"src": m.group(1), "dst": m.group(2), "packets": 0}
            sas.append(cur)
            continue
        if cur is None:
            continue
        m = re.search(r"proto esp spi (0x[0-9a-f]+)", line)
        if m:
            cur["spi"] = int(m.group(1), 16)
        m = re.search(r"enc cbc\(aes\) 0x([0-9a-f]+)", line)
        if m:
            cur["enc"] = m.group(1)
        # iproute2 6.1 prints "auth-trunc hmac(sha512) 0xKEY (512 bits) 256".
        m = re.search(r"auth-trunc hmac\(sha\d+\) 0x([0-9a-f]+) (?:\(\d+ bits\) )?(\d+)", line)
        if m:
            cur["auth"], cur["icv"] = m.group(1), int(m.group(2))
        # ... and "aead rfc4106(gcm(aes)) 0xKEY (160 bits) 128".
        m = re.search(r"aead rfc4106\(gcm\(aes\)\) 0x([0-9a-f]+) (?:\(\d+ bits\) )?(\d+)", line)
        if m:
            cur["enc"], cur["auth"], cur["icv"] = m.group(1), "", int(m.group(2))
        if re.search(r"\bflag\b.*\besn\b", line):
            cur["esn"] = True
        m = re.search(r"replay_window (\d+)", line)
        if m:
            cur["window"] = int(m.group(1))
        m = re.search(r"replay-window (\d+)", line)
        if m and int(m.group(1)):
            cur["window"] = int(m.group(1))
        m = re.match(r"\s+(\d+)\(bytes\), (\d+)\(packets\)", line)
        if m:
            cur["packets"] = int(m.group(2))
    return sas
