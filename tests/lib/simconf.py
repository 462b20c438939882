# SPDX-License-Identifier: ISC
"""The configuration of one daemon on its own simulated SADB with one link l1."""
import os

from keysched import write_secret


def write_one_link(work, daemon_extra="", link_extra=""):
    """A fresh secret in WORK/l.key and WORK/sakeyd.conf (kernel = sim, its
    state, control socket and link l1 192.0.2.1 -> 192.0.2.2, rotate_every
    1h) with the lines given added to [daemon] and [link l1]. Returns the
    configuration's path."""
    write_secret(f"{work}/l.key", os.urandom(32))
    conf = f"{work}/sakeyd.conf"
    with open(conf, "w") as f:
        f.write(f"""[daemon]
kernel = sim
state_dir = {work}/state
control_socket = {work}/control.sock
{daemon_extra}
[link l1]
local = 192.0.2.1
remote = 192.0.2.2
secret_file = {work}/l.key
rotate_every = 1h
{link_extra}""")
    return conf
