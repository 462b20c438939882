# SPDX-License-Identifier: ISC
"""Shell commands and waiting for a condition."""
import os
import socket
import subprocess
import time


def sh(cmd, check=True):
    """Run a shell command; its stdout (CalledProcessError if check and it fails)."""
    return subprocess.run(cmd, shell=True, check=check, capture_output=True, text=True).stdout


def wait_for(pred, timeout, interval=0.1):
    """Poll pred until it holds or timeout seconds pass; pred's last value."""
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def connect_unix(path, timeout, kind=socket.SOCK_SEQPACKET):
    """A socket connected to the Unix socket at path, retried until timeout
    seconds pass: the path exists from bind(), connections work from listen()."""
    end = time.time() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, kind)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.time() >= end:
                raise
            time.sleep(0.05)


def marked(mark):
    """Live (not zombie) processes whose environment holds the entry mark ("NAME=value")."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if mark.encode() not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(name))
    return found
