#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""PF_KEY conformance: one set of scenarios, run against the real kernel (in UML) or the simulator.

    conform.py --target kernel [--update] [--workdir DIR] [SCENARIO...]
    conform.py --target sim --simd PATH [--workdir DIR] [SCENARIO...]

Each scenario prints a normalised transcript: per step, which client received
which message (type, errno, satype, SPI, SA state, extension types), with our
own pids/seqs, acquire seqs and kernel-assigned policy ids made symbolic and
no addresses, keys or times. The transcripts are compared with golden/<name>.txt,
which the real kernel produced (--target kernel --update, inside UML via
tests/kernel/uml-run.sh). Prints "N passed, N failed"; exits 1 on any mismatch.

The ESP scenarios (esp_*) have two hosts: a (10.7.0.1, the sender) and b
(10.7.0.2, the receiver), each with its own SADB and PF_KEY client. On the
kernel, a is the root network namespace and b the namespace "espb", joined by
veth; a sends real UDP through its outbound SA and the ESP frames are
captured on a's veth (AF_PACKET): their SPI and sequence number are the
kernel's own. A permanent neighbour entry with a made-up MAC makes b drop
them unseen (PACKET_OTHERHOST, before xfrm_input); a step "deliver" sends a
captured frame again with b's real MAC, and its outcome (accepted, replay,
too-old, ...) is read from the change of b's SA counters (`ip -s xfrm
state`: packets, stats replay / replay-window) and /proc/net/xfrm_stat. On
the simulator, a and b are two simd processes: "send" on a gives the SPI and
sequence number sim_traffic used, "deliver" on b runs sim_deliver with that
number. The transcripts show SPIs, sequence numbers, outcomes and counters,
never bytes (ESP overhead is not modelled).
"""
import argparse
import ctypes
import difflib
import errno
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, 'golden')

# --- PF_KEYv2 (linux/pfkeyv2.h), host byte order except the SPI --------------------------------

PF_KEY, PF_KEY_V2 = 15, 2
TYPES = {1: 'GETSPI', 2: 'UPDATE', 3: 'ADD', 4: 'DELETE', 5: 'GET', 6: 'ACQUIRE', 7: 'REGISTER',
         8: 'EXPIRE', 9: 'FLUSH', 10: 'DUMP', 11: 'X_PROMISC', 12: 'X_PCHANGE', 13: 'X_SPDUPDATE',
         14: 'X_SPDADD', 15: 'X_SPDDELETE', 16: 'X_SPDGET', 17: 'X_SPDACQUIRE', 18: 'X_SPDDUMP',
         19: 'X_SPDFLUSH', 20: 'X_SPDSETIDX', 21: 'X_SPDEXPIRE', 22: 'X_SPDDELETE2'}
T = {v: k for k, v in TYPES.items()}
SATYPE_UNSPEC, SATYPE_AH, SATYPE_ESP = 0, 2, 3
EXT_SA, EXT_LT_CUR, EXT_LT_HARD, EXT_LT_SOFT = 1, 2, 3, 4
EXT_SRC, EXT_DST, EXT_PROXY, EXT_KEY_AUTH, EXT_KEY_ENC = 5, 6, 7, 8, 9
EXT_SPIRANGE, EXT_POLICY, EXT_SA2 = 16, 18, 19
STATES = {0: 'LARVAL', 1: 'MATURE', 2: 'DYING', 3: 'DEAD'}
IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND = 2, 2
IPSEC_MODE_TRANSPORT, IPSEC_LEVEL_REQUIRE = 1, 2
EALG_AESCBC, EALG_AES_GCM16, AALG_SHA1HMAC = 12, 20, 3


def ext(etype, body):
    """An extension: {len, type} + body, padded to 8 bytes."""
    raw = struct.pack('=HH', 0, etype) + body
    raw += b'\0' * (-len(raw) % 8)
    return struct.pack('=H', len(raw) // 8) + raw[2:]


def ext_sa(spi, auth=AALG_SHA1HMAC, enc=EALG_AESCBC, replay=32):
    return ext(EXT_SA, struct.pack('!I', spi) + struct.pack('=BBBBI', replay, 0, auth, enc, 0))


def ext_addr(etype, addr, prefix=None, proto=0):
    if ':' in addr:
        sa = struct.pack('=H', socket.AF_INET6) + struct.pack('!HI', 0, 0) + \
            socket.inet_pton(socket.AF_INET6, addr) + struct.pack('=I', 0)
        prefix = 128 if prefix is None else prefix
    else:
        sa = struct.pack('=H', socket.AF_INET) + struct.pack('!H', 0) + \
            socket.inet_aton(addr) + b'\0' * 8
        prefix = 32 if prefix is None else prefix
    return ext(etype, struct.pack('=BBH', proto, prefix, 0) + sa)


def ext_key(etype, bits, fill=None):
    data = bytes(range(1, bits // 8 + 1)) if fill is None else bytes([fill]) * (bits // 8)
    return ext(etype, struct.pack('=HH', bits, 0) + data)


def ext_lifetime(etype, addtime, allocations=0, nbytes=0, usetime=0):
    return ext(etype, struct.pack('=IQQQ', allocations, nbytes, addtime, usetime))


def ext_policy(pid=0, reqs=True):
    body = struct.pack('=HBBII', IPSEC_POLICY_IPSEC, IPSEC_DIR_OUTBOUND, 0, pid, 0)
    if reqs:
        body += struct.pack('=HHBBHII', 16, socket.IPPROTO_ESP, IPSEC_MODE_TRANSPORT,
                            IPSEC_LEVEL_REQUIRE, 0, 0, 0)
    return ext(EXT_POLICY, body)


def msg(mtype, satype, seq, pid, *exts):
    body = b''.join(exts)
    return struct.pack('=BBBBHHII', PF_KEY_V2, T[mtype], 0, satype, (16 + len(body)) // 8, 0,
                       seq, pid) + body


def ext_sa2(mode, reqid=0):
    return ext(EXT_SA2, struct.pack('=BBHII', mode, 0, 0, 0, reqid))


def sa_msg(mtype, satype, seq, pid, spi, src, dst, keys=True, enc=EALG_AESCBC, enc_bits=128,
           lifetimes=None, packets=None, replay=32, fill=None, sa2=None, extra=()):
    """An SA message; lifetimes = (soft, hard) add seconds, packets = (soft, hard) packet limits."""
    exts = [ext_sa(spi, enc=enc, replay=replay), ext_addr(EXT_SRC, src), ext_addr(EXT_DST, dst)]
    if keys:
        exts += [ext_key(EXT_KEY_AUTH, 160), ext_key(EXT_KEY_ENC, enc_bits, fill)]
    if lifetimes or packets:
        soft, hard = lifetimes or (0, 0)
        psoft, phard = packets or (0, 0)
        exts += [ext_lifetime(EXT_LT_SOFT, soft, psoft), ext_lifetime(EXT_LT_HARD, hard, phard)]
    if sa2:
        exts.append(ext_sa2(*sa2))
    exts += list(extra)
    return msg(mtype, satype, seq, pid, *exts)


MODES = {0: 'any', 1: 'transport', 2: 'tunnel', 3: 'beet'}


def parse(data):
    """The fields a transcript shows: header, SPI/state, policy id, extension types in order,
    and the details some scenarios ask for (replay, mode, key, lifetimes, algorithms)."""
    version, mtype, err, satype, length, res, seq, pid = struct.unpack_from('=BBBBHHII', data)
    out = {'type': TYPES.get(mtype, str(mtype)), 'errno': err, 'satype': satype, 'seq': seq,
           'pid': pid, 'exts': [], 'len_ok': length * 8 == len(data) and version == PF_KEY_V2,
           'reserved': res, 'detail': {}}
    d = out['detail']
    off = 16
    while off + 4 <= len(data):
        elen, etype = struct.unpack_from('=HH', data, off)
        if elen == 0 or off + elen * 8 > len(data):
            out['exts'].append('BAD')
            break
        out['exts'].append(etype)
        if etype == EXT_SA:
            out['spi'] = struct.unpack_from('!I', data, off + 4)[0]
            out['state'] = data[off + 9]
            d['replay'] = f'replay={data[off + 8]}'
        elif etype == EXT_POLICY:
            out['policy'] = struct.unpack_from('=I', data, off + 8)[0]
        elif etype == EXT_SA2:
            d['mode'] = f'mode={MODES.get(data[off + 4], data[off + 4])} reqid={struct.unpack_from("=I", data, off + 12)[0]}'
        elif etype == EXT_KEY_ENC:
            bits = struct.unpack_from('=H', data, off + 4)[0]
            d['key'] = f'kenc={bits}b:{data[off + 8]:02x}' if bits else 'kenc=0b'
        elif etype in (EXT_LT_CUR, EXT_LT_HARD, EXT_LT_SOFT):
            alloc, _nbytes, addtime, usetime = struct.unpack_from('=IQQQ', data, off + 4)
            name = {EXT_LT_CUR: 'cur', EXT_LT_HARD: 'hard', EXT_LT_SOFT: 'soft'}[etype]
            if etype == EXT_LT_CUR:
                # Absolute times: only whether they are set.
                d.setdefault('lt', []).append(f'cur(pkts={alloc} used={"yes" if usetime else "no"})')
            else:
                d.setdefault('lt', []).append(f'{name}(pkts={alloc} add={addtime} use={usetime})')
        elif etype in (14, 15):
            algs = []
            for a in range(off + 8, off + elen * 8, 8):
                aid, ivlen, lo, hi = struct.unpack_from('=BBHH', data, a)
                algs.append(f'{aid}/{ivlen}/{lo}-{hi}' if etype == 15 else f'{aid}/{lo}-{hi}')
            d['auth' if etype == 14 else 'enc'] = ('auth=' if etype == 14 else 'enc=') + ','.join(algs)
        off += elen * 8
    if 'lt' in d:
        # The wire order of extensions carries no meaning (the codec writes them in type order).
        d['lt'].sort(key=lambda v: ('hard', 'soft', 'cur').index(v.split('(')[0]))
    if out['type'].startswith('X_SPD') and not err:
        d['refcnt'] = 'refcnt=' + ('set' if res else 'zero')
    return out


# --- ESP between two hosts ---------------------------------------------------------------------

ESP_NS, ESP_A, ESP_B = 'espb', '10.7.0.1', '10.7.0.2'
FAKE_MAC = '02:00:00:00:00:99'
ETH_P_ALL, CLONE_NEWNET = 0x0003, 0x40000000
SEQ_ERR = 'XfrmInStateSeqError'


def in_netns(name, make):
    """make() run in network namespace name (sockets keep the namespace they were made in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open('/proc/self/ns/net', os.O_RDONLY)
    there = os.open(f'/run/netns/{name}', os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET):
            raise OSError(ctypes.get_errno(), f'setns {name}')
        try:
            return make()
        finally:
            if libc.setns(home, CLONE_NEWNET):
                raise OSError(ctypes.get_errno(), 'setns back')
    finally:
        os.close(home)
        os.close(there)


def esp_of_frame(frame, src, dst):
    """(spi, seq) of an Ethernet frame carrying IPv4 ESP from src to dst, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b'\x08\x00':
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != socket.IPPROTO_ESP or socket.inet_ntoa(ip[12:16]) != src or \
            socket.inet_ntoa(ip[16:20]) != dst or len(ip) < ihl + 8:
        return None
    return struct.unpack_from('!II', ip, ihl)


def parse_ip_states(out):
    """`ip -s xfrm state`: {spi: (packets, replay, replay_window)} (iproute2 prints the SA's
    x->stats as "replay-window N replay N failed N" and curlft as "N(bytes), N(packets)")."""
    sas, spi = {}, None
    for line in out.splitlines():
        m = re.search(r'proto esp spi (0x[0-9a-f]+)', line)
        if m:
            spi = int(m.group(1), 16)
            sas[spi] = [None, None, None]
            continue
        if spi is None:
            continue
        m = re.match(r'\s+(\d+)\(bytes\), (\d+)\(packets\)', line)
        if m:
            sas[spi][0] = int(m.group(2))
        m = re.search(r'replay-window (\d+) replay (\d+) failed (\d+)', line)
        if m:
            sas[spi][1], sas[spi][2] = int(m.group(2)), int(m.group(1))
    return {k: tuple(v) for k, v in sas.items()}


def outcome_of(before, after, spi):
    """What one delivered frame did, from b's counters before and after it."""
    (sas0, st0), (sas1, st1) = before, after
    d = lambda key: st1.get(key, 0) - st0.get(key, 0)
    if spi in sas0 and spi in sas1:
        (p0, r0, w0), (p1, r1, w1) = sas0[spi], sas1[spi]
        if p1 == p0 + 1:
            return 'accepted'
        if r1 == r0 + 1:
            return 'replay'
        if w1 == w0 + 1:
            return 'too-old'
        if d(SEQ_ERR):
            return 'seq-zero'
    if d('XfrmInNoStates') or d('XfrmAcquireError'):
        return 'no-state'
    if d('XfrmInStateExpired'):
        return 'expired'
    return 'lost'


# --- targets -----------------------------------------------------------------------------------

class Client:
    def __init__(self, name, sock):
        self.name, self.sock = name, sock

    def send(self, data):
        self.sock.send(data)

    def close(self):
        self.sock.close()


class KernelTarget:
    """Real PF_KEY sockets; traffic is real UDP over a dummy interface."""
    name = 'kernel'
    settle = 0.15

    def __init__(self, args):
        subprocess.run(['sysctl', '-q', '-w', 'net.core.xfrm_acq_expires=3'], check=True)
        subprocess.run('ip link add d0 type dummy && ip link set d0 up && '
                       'ip addr add 10.1.0.1/24 dev d0', shell=True, check=True)

        self.esp = False

    def reset(self):
        subprocess.run(['ip', 'xfrm', 'state', 'flush'], check=True)
        subprocess.run(['ip', 'xfrm', 'policy', 'flush'], check=True)
        if self.esp:
            subprocess.run(['ip', '-n', ESP_NS, 'xfrm', 'state', 'flush'], check=True)
            subprocess.run(['ip', '-n', ESP_NS, 'xfrm', 'policy', 'flush'], check=True)
        self.frames = {}

    def client(self, name, host='a'):
        if host == 'b':
            return Client(name, in_netns(ESP_NS, lambda: socket.socket(PF_KEY, socket.SOCK_RAW,
                                                                         PF_KEY_V2)))
        return Client(name, socket.socket(PF_KEY, socket.SOCK_RAW, PF_KEY_V2))

    def esp_hosts(self):
        """Host b: the namespace espb, veth to the root (host a); a's frames to b are captured
        on the way and dropped by b (a made-up destination MAC) until delivered again."""
        if not self.esp:
            subprocess.run(f'ip netns add {ESP_NS} && '
                           f'ip link add va type veth peer name vb netns {ESP_NS} && '
                           f'ip addr add {ESP_A}/24 dev va && ip link set va up && '
                           f'ip -n {ESP_NS} addr add {ESP_B}/24 dev vb && '
                           f'ip -n {ESP_NS} link set vb up && ip -n {ESP_NS} link set lo up && '
                           f'ip neigh replace {ESP_B} lladdr {FAKE_MAC} dev va nud permanent',
                           shell=True, check=True)
            out = subprocess.run(['ip', '-n', ESP_NS, '-o', 'link', 'show', 'vb'], check=True,
                                 capture_output=True, text=True).stdout
            self.b_mac = bytes.fromhex(re.search(r'link/ether (\S+)', out).group(1)
                                       .replace(':', ''))
            self.pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.pkt.bind(('va', ETH_P_ALL))
            self.esp = True
        self.base = self.b_counters()

    def send(self, src, dst, nbytes):
        """UDP src -> dst; the ESP frame it became, captured on va: (spi, seq), or a text."""
        while select.select([self.pkt], [], [], 0)[0]:
            self.pkt.recv(65536)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((src, 0))
            try:
                u.sendto(b'x' * nbytes, (dst, 9999))
            except OSError as e:
                return f'errno={e.errno}'
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if not select.select([self.pkt], [], [], max(0.0, end - time.monotonic()))[0]:
                break
            frame = self.pkt.recv(65536)
            esp = esp_of_frame(frame, src, dst)
            if esp:
                self.frames.setdefault(esp, []).append(frame)
                return esp
        return 'no ESP frame'

    def deliver(self, dst, spi, seq, old):
        """The captured frame (spi, seq) (the first one sent with it if old, else the last)
        to b; its outcome from b's counters."""
        frames = self.frames.get((spi, seq))
        if not frames:
            return 'not captured'
        frame = frames[0] if old else frames[-1]
        before = self.b_counters()
        self.pkt.send(self.b_mac + frame[6:])
        time.sleep(0.05)
        after = self.b_counters()
        return outcome_of(before, after, spi)

    def b_counters(self):
        """Host b's SAs by SPI {spi: (packets, replay, replay_window)} and its xfrm_stat."""
        out = subprocess.run(['ip', '-n', ESP_NS, '-s', 'xfrm', 'state'], check=True,
                             capture_output=True, text=True).stdout
        stat = subprocess.run(['ip', 'netns', 'exec', ESP_NS, 'cat', '/proc/net/xfrm_stat'],
                              check=True, capture_output=True, text=True).stdout
        return parse_ip_states(out), {k: int(v) for k, v in
                                      (line.split() for line in stat.splitlines())}

    def counters(self, dst, spi):
        """b's SA (dst, spi): packets accepted, replay, replay_window; and XfrmInStateSeqError
        since esp_hosts()."""
        sas, stat = self.b_counters()
        packets, replay, window = sas.get(spi, (None, None, None))
        return packets, replay, window, stat[SEQ_ERR] - self.base[1][SEQ_ERR]

    def traffic(self, src, dst, nbytes):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((src, 0))
            try:
                u.sendto(b'x' * nbytes, (dst, 9999))
            except OSError as e:
                return f'errno={e.errno}'
        return 'sent'

    def close(self):
        pass


class SimTarget:
    """simd on the host: SOCK_SEQPACKET clients; traffic through its control socket."""
    name = 'sim'
    settle = 0.3

    def __init__(self, args):
        self.simd, self.dir = args.simd, args.workdir
        self.proc = None
        self.b = None

    def reset(self):
        self.close()
        self.path, self.proc, self.ctl, self.ctl_file = self.start('')

    def start(self, tag):
        """A simd: its PF_KEY socket path, process, control socket and its file."""
        path = os.path.join(self.dir, f'pfkey{tag}.sock')
        ctl_path = os.path.join(self.dir, f'control{tag}.sock')
        for p in (path, ctl_path):
            if os.path.exists(p):
                os.unlink(p)
        proc = subprocess.Popen([self.simd, path, ctl_path, '--acq-expires', '3'])
        for _ in range(200):
            if os.path.exists(ctl_path):
                break
            time.sleep(0.02)
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.connect(ctl_path)
        return path, proc, ctl, ctl.makefile('r')

    def client(self, name, host='a'):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.b[0] if host == 'b' else self.path)
        return Client(name, s)

    def esp_hosts(self):
        """Host b: a second simd (a is the first)."""
        if not self.b:
            self.b = self.start('-b')

    def ask(self, host, line):
        ctl, f = (self.b[2], self.b[3]) if host == 'b' else (self.ctl, self.ctl_file)
        ctl.sendall(f'{line}\n'.encode())
        return f.readline().strip()

    def send(self, src, dst, nbytes):
        ret, seq = (int(w) for w in self.ask('a', f'send {src} {dst} {nbytes}').split())
        if seq:
            return ret & 0xffffffff, seq
        # As traffic(): -EAGAIN (held for an acquire) is a silent drop on Linux.
        return 'sent in clear' if ret == 0 else 'no ESP frame' if ret == -errno.EAGAIN \
            else f'errno={-ret}'

    def deliver(self, dst, spi, seq, old):
        # No payload is modelled: an old frame and a new one with the same seq are the same.
        return self.ask('b', f'deliver {dst} {spi:#x} {seq} 100')

    def counters(self, dst, spi):
        words = self.ask('b', f'replay {dst} {spi:#x}').split()
        st = self.ask('b', 'stats').split()
        seq_err = dict(zip(st[::2], map(int, st[1::2])))['in_state_seq_errors']
        if words == ['no-state']:
            return None, None, None, seq_err
        r = dict(zip(words[::2], map(int, words[1::2])))
        return r['packets'], r['replay'], r['replay_window'], seq_err

    def traffic(self, src, dst, nbytes):
        self.ctl.sendall(f'traffic {src} {dst} {nbytes}\n'.encode())
        ret = int(self.ctl_file.readline())
        # sim_traffic: > 0 the SPI used, 0 in clear, -EAGAIN held for an acquire. Linux drops
        # the latter silently (xfrm_larval_drop=1): sendto() succeeds.
        return 'sent' if ret >= 0 or ret == -errno.EAGAIN else f'errno={-ret}'

    def close(self):
        if self.b:
            b, self.b = self.b, None
            self.stop(b[1], b[2], b[3])
        if not self.proc:
            return
        proc, self.proc = self.proc, None
        self.stop(proc, self.ctl, self.ctl_file)

    @staticmethod
    def stop(proc, ctl, ctl_file):
        ctl.sendall(b'quit\n')
        ctl_file.readline()
        ctl.close()
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(10)
        if rc != 0:
            raise RuntimeError(f'simd exited {rc}')


# --- scenario driver ---------------------------------------------------------------------------

class Run:
    """One scenario on one target: clients, symbolic names, the transcript."""

    def __init__(self, target):
        self.t = target
        self.clients = {}
        self.lines = []
        self.seq = 1000
        self.pid = os.getpid()
        self.our_seqs, self.acq_seqs, self.policy_ids = {}, {}, {}
        self.step_no = 0
        self.details = ()      # which parse() details the transcript shows
        self.reject_from = None  # a client whose last send had a bad base header

    def open(self, *names):
        for n in names:
            self.clients[n] = self.t.client(n)
        if isinstance(self.t, SimTarget):
            time.sleep(0.3)  # the simulator accepts asynchronously

    def next_seq(self):
        self.seq += 1
        self.our_seqs[self.seq] = f'S{len(self.our_seqs) + 1}'
        return self.seq

    def sym(self, table, value, prefix):
        if value not in table:
            table[value] = f'{prefix}{len(table) + 1}'
        return table[value]

    def fmt(self, name, m):
        if name == self.reject_from and m['errno'] and not m['exts']:
            # Linux fails send() for a bad base header; the simulator answers with an error
            # message instead (svc/kernel/sim.h). Both show as the same line.
            return f"  {name}: send failed errno={m['errno']}"
        if m['type'] == 'ACQUIRE':
            seq = self.sym(self.acq_seqs, m['seq'], 'A')
        elif m['seq'] in self.our_seqs:
            seq = self.our_seqs[m['seq']]
        elif m['seq'] in self.acq_seqs and m['type'] not in ('DUMP', 'X_SPDDUMP'):
            seq = self.acq_seqs[m['seq']]
        else:
            seq = str(m['seq'])
        pid = 'self' if m['pid'] == self.pid else str(m['pid'])
        s = f"  {name}: {m['type']} errno={m['errno']} satype={m['satype']} seq={seq} pid={pid}"
        if 'spi' in m:
            s += f" spi={m['spi']:#x} state={STATES.get(m['state'], m['state'])}"
        if 'policy' in m:
            s += f" policy={self.sym(self.policy_ids, m['policy'], 'P')}"
        s += f" exts={sorted(m['exts'])}"
        for key in self.details:
            if key in m['detail']:
                v = m['detail'][key]
                s += ' ' + (' '.join(v) if isinstance(v, list) else v)
        if not m['len_ok']:
            s += ' BADLEN'
        return s

    def collect(self, duration=None):
        """Messages until quiet for the target's settle time (or for duration), by client."""
        got = {n: [] for n in self.clients}
        end = time.monotonic() + duration if duration else None
        while True:
            timeout = self.t.settle if end is None else max(0.0, end - time.monotonic())
            if end is not None and timeout == 0:
                break
            socks = {c.sock: n for n, c in self.clients.items()}
            ready, _, _ = select.select(list(socks), [], [], timeout)
            if not ready and end is None:
                break
            for s in ready:
                got[socks[s]].append(parse(s.recv(65536)))
        for n in sorted(got):
            for m in got[n]:
                self.lines.append(self.fmt(n, m))

    def step(self, label, who=None, data=None, wait=None):
        self.step_no += 1
        self.lines.append(f'step {self.step_no}: {label}')
        if who:
            self.clients[who].send(data)
        self.collect(wait)

    def req(self, who, label, build):
        """Send build(seq, pid) from who and record what everybody receives."""
        self.step(f'{who} {label}', who, build(self.next_seq(), self.pid))

    def req_acq(self, who, label, build, n=1):
        """Send build(seq, pid) with the seq of the n-th ACQUIRE seen."""
        seq = next(raw for raw, sym in self.acq_seqs.items() if sym == f'A{n}')
        self.step(f'{who} {label}', who, build(seq, self.pid))

    def bad(self, who, label, data):
        """A message with a bad base header: Linux fails send() and queues nothing."""
        self.step_no += 1
        self.lines.append(f'step {self.step_no}: {who} {label}')
        self.reject_from = who
        try:
            self.clients[who].send(data)
        except OSError as e:
            self.lines.append(f'  {who}: send failed errno={e.errno}')
        self.collect()
        self.reject_from = None

    def traffic(self, src, dst, nbytes, count=1):
        """count packets from src to dst; the step shows each send's outcome."""
        self.step_no += 1
        self.lines.append(f'step {self.step_no}: traffic {src} -> {dst} x{count}')
        for _ in range(count):
            self.lines.append(f'  traffic: {self.t.traffic(src, dst, nbytes)}')
        self.collect()

    def open_hosts(self):
        """The two ESP hosts: client a on host a (the sender), client b on host b."""
        self.t.esp_hosts()
        self.clients['a'] = self.t.client('a', 'a')
        self.clients['b'] = self.t.client('b', 'b')
        if isinstance(self.t, SimTarget):
            time.sleep(0.3)

    def both(self, label, build):
        """The same request from a on host a and from b on host b."""
        for who in ('a', 'b'):
            self.req(who, label, build)

    def send(self, count=1, src=ESP_A, dst=ESP_B):
        """count UDP packets a -> b; each one's SPI and ESP sequence number (runs of
        consecutive numbers on one SPI shown as first..last)."""
        self.step_no += 1
        self.lines.append(f'step {self.step_no}: send {src} -> {dst} x{count}')
        got = [self.t.send(src, dst, 100) for _ in range(count)]
        runs = []
        for g in got:
            if isinstance(g, tuple) and runs and isinstance(runs[-1][0], tuple) and \
                    runs[-1][0][0] == g[0] and runs[-1][1][1] + 1 == g[1]:
                runs[-1][1] = g
            else:
                runs.append([g, g])
        for first, last in runs:
            if not isinstance(first, tuple):
                self.lines.append(f'  send: {first}')
            elif first == last:
                self.lines.append(f'  send: spi={first[0]:#x} seq={first[1]}')
            else:
                self.lines.append(f'  send: spi={first[0]:#x} seq={first[1]}..{last[1]}')
        self.collect()

    def deliver(self, spi, seqs, old=False, dst=ESP_B):
        """The packets (spi, seq) sent earlier, delivered to b in this order (old: the first
        frame sent with that number, where the SA instance sent it twice)."""
        self.step_no += 1
        self.lines.append(f'step {self.step_no}: deliver to b spi={spi:#x} '
                          f'seq={",".join(map(str, seqs))}{" (old frames)" if old else ""}')
        for seq in seqs:
            self.lines.append(f'  deliver seq={seq}: {self.t.deliver(dst, spi, seq, old)}')
        self.collect()

    def counters(self, spi, dst=ESP_B):
        packets, replay, window, seq_err = self.t.counters(dst, spi)
        self.step_no += 1
        self.lines.append(f'step {self.step_no}: counters of b spi={spi:#x}')
        self.lines.append(f'  packets={packets} replay={replay} replay-window={window} '
                          f'XfrmInStateSeqError={seq_err}')

    def close(self):
        for c in self.clients.values():
            c.close()


V4 = ('10.0.0.1', '10.0.0.2')
V6 = ('fd00::1', 'fd00::2')


def sc_register(r):
    r.open('a', 'b', 'c')
    r.details = ('auth', 'enc')
    r.req('a', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.details = ()
    r.req('b', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('a', 'REGISTER ESP again', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('c', 'REGISTER UNSPEC', lambda s, p: msg('REGISTER', SATYPE_UNSPEC, s, p))
    # c is still unregistered: an SA's hard expiry reaches a and b only.
    r.req('a', 'ADD 0x2001 hard 1s', lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x2001, *V4,
                                                          lifetimes=(0, 1)))
    r.step('wait 3s for the hard expiry', wait=3.0)


def sc_add_get_delete(r):
    r.open('a', 'obs')
    for fam, (src, dst), spi in (('v4', V4, 0x1001), ('v6', V6, 0x1002)):
        r.req('a', f'ADD {fam} {spi:#x}', lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, spi, src, dst))
        r.req('a', f'GET {fam} {spi:#x}',
              lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, spi, src, dst, keys=False))
        r.req('a', f'ADD {fam} {spi:#x} again',
              lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, spi, src, dst))
        r.req('a', f'DELETE {fam} {spi:#x}',
              lambda s, p: sa_msg('DELETE', SATYPE_ESP, s, p, spi, src, dst, keys=False))
        r.req('a', f'GET {fam} {spi:#x} deleted',
              lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, spi, src, dst, keys=False))
        r.req('a', f'DELETE {fam} {spi:#x} missing',
              lambda s, p: sa_msg('DELETE', SATYPE_ESP, s, p, spi, src, dst, keys=False))
    r.req('a', 'ADD AES-GCM-16 (ealg 20)',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x1003, *V4, enc=EALG_AES_GCM16,
                              enc_bits=160))


def sc_flush(r):
    r.open('a', 'b')
    r.req('a', 'ADD 0x3001', lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x3001, *V4))
    r.req('a', 'FLUSH ESP', lambda s, p: msg('FLUSH', SATYPE_ESP, s, p))
    r.req('a', 'FLUSH ESP (empty)', lambda s, p: msg('FLUSH', SATYPE_ESP, s, p))
    r.req('b', 'DUMP (empty)', lambda s, p: msg('DUMP', SATYPE_ESP, s, p))


def sc_dump(r):
    r.open('a', 'b')
    r.req('a', 'DUMP ESP (empty)', lambda s, p: msg('DUMP', SATYPE_ESP, s, p))
    for spi in (0x4001, 0x4002, 0x4003):
        r.req('a', f'ADD {spi:#x}', lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, spi, *V4))
    r.req('a', 'DUMP ESP', lambda s, p: msg('DUMP', SATYPE_ESP, s, p))
    r.req('a', 'DUMP UNSPEC', lambda s, p: msg('DUMP', SATYPE_UNSPEC, s, p))
    r.req('a', 'DUMP AH (none)', lambda s, p: msg('DUMP', SATYPE_AH, s, p))


def sc_expire(r):
    r.open('reg', 'obs')
    r.req('reg', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('reg', 'ADD 0x5001 soft 1s hard 2s',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x5001, *V4, lifetimes=(1, 2)))
    r.step('wait 4s for soft and hard expiry', wait=4.0)
    r.req('reg', 'GET 0x5001 expired',
          lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, 0x5001, *V4, keys=False))


NET = '10.1.0.0'


def spdadd(seq, pid, src=NET, dst=NET, mtype='X_SPDADD'):
    return msg(mtype, SATYPE_UNSPEC, seq, pid, ext_addr(EXT_SRC, src, 24, 255),
               ext_addr(EXT_DST, dst, 24, 255), ext_policy())


def sc_acquire(r):
    r.open('reg', 'obs')
    r.req('reg', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('reg', 'SPDADD out 10.1.0.0/24 esp/transport/require', spdadd)
    r.t.traffic('10.1.0.1', '10.1.0.2', 100)
    r.step('after traffic 10.1.0.1 -> 10.1.0.2')
    r.t.traffic('10.1.0.1', '10.1.0.2', 100)
    r.step('after more traffic while the acquire is pending')
    r.step('wait 5s: the larval state expires (acq_expires 3)', wait=5.0)
    r.t.traffic('10.1.0.1', '10.1.0.2', 100)
    r.step('after traffic again: a new acquire')


def sc_spd(r):
    r.open('a', 'b')
    r.details = ('refcnt',)
    r.req('a', 'SPDDUMP (empty)', lambda s, p: msg('X_SPDDUMP', SATYPE_UNSPEC, s, p))
    r.req('a', 'SPDADD out 10.1.0.0/24', spdadd)
    r.req('a', 'SPDADD out 10.1.0.0/24 again', spdadd)
    r.req('a', 'SPDADD out 10.2.0.0/24', lambda s, p: spdadd(s, p, '10.2.0.0', '10.2.0.0'))
    r.req('a', 'SPDDUMP', lambda s, p: msg('X_SPDDUMP', SATYPE_UNSPEC, s, p))
    first = next(iter(r.policy_ids), 0)
    r.req('a', 'SPDDELETE2 P1',
          lambda s, p: msg('X_SPDDELETE2', SATYPE_UNSPEC, s, p, ext_policy(first, reqs=False)))
    r.req('a', 'SPDDELETE2 P1 again',
          lambda s, p: msg('X_SPDDELETE2', SATYPE_UNSPEC, s, p, ext_policy(first, reqs=False)))
    r.req('a', 'SPDDELETE out 10.2.0.0/24',
          lambda s, p: spdadd(s, p, '10.2.0.0', '10.2.0.0', 'X_SPDDELETE'))
    r.req('a', 'SPDDELETE out 10.2.0.0/24 again',
          lambda s, p: spdadd(s, p, '10.2.0.0', '10.2.0.0', 'X_SPDDELETE'))
    r.req('a', 'SPDDUMP (empty again)', lambda s, p: msg('X_SPDDUMP', SATYPE_UNSPEC, s, p))


def sc_update(r):
    r.open('a', 'obs')
    r.details = ('mode', 'key', 'lt')
    r.req('a', 'ADD 0x8001 key 11 soft 100s hard 200s',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x8001, *V4, fill=0x11,
                              lifetimes=(100, 200)))
    r.req('a', 'UPDATE 0x8001 key 22 soft 300s hard 400s tunnel reqid 7',
          lambda s, p: sa_msg('UPDATE', SATYPE_ESP, s, p, 0x8001, *V4, fill=0x22,
                              lifetimes=(300, 400), sa2=(2, 7)))
    r.req('a', 'GET 0x8001: only the lifetimes changed',
          lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, 0x8001, *V4, keys=False))
    r.req('a', 'UPDATE 0x8002 missing',
          lambda s, p: sa_msg('UPDATE', SATYPE_ESP, s, p, 0x8002, *V4))
    r.req('a', 'UPDATE 0x8001 without KEY_ENCRYPT',
          lambda s, p: sa_msg('UPDATE', SATYPE_ESP, s, p, 0x8001, *V4, keys=False,
                              lifetimes=(300, 400)))


def sc_getspi(r):
    r.open('a', 'reg')
    r.details = ('lt',)
    r.req('reg', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    spirange = lambda lo, hi: ext(EXT_SPIRANGE, struct.pack('=III', lo, hi, 0))
    getspi = lambda lo, hi: lambda s, p: msg('GETSPI', SATYPE_ESP, s, p, ext_addr(EXT_SRC, V4[0]),
                                             ext_addr(EXT_DST, V4[1]), spirange(lo, hi))
    r.req('a', 'GETSPI 0x7001-0x7001', getspi(0x7001, 0x7001))
    r.req('a', 'GETSPI 0x7001-0x7001 again', getspi(0x7001, 0x7001))
    r.req('a', 'GET 0x7001 (larval)',
          lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, 0x7001, *V4, keys=False))
    r.req('a', 'ADD 0x7001', lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x7001, *V4))
    r.req('a', 'UPDATE 0x7001', lambda s, p: sa_msg('UPDATE', SATYPE_ESP, s, p, 0x7001, *V4))
    r.req('a', 'GET 0x7001', lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, 0x7001, *V4, keys=False))
    r.req('a', 'GETSPI 0x7003-0x7002 (min > max)', getspi(0x7003, 0x7002))
    r.step('wait 5s: leftover larval states expire (acq_expires 3)', wait=5.0)


def sc_malformed(r):
    r.open('a', 'obs')
    r.details = ('replay',)
    src, dst = V4
    sa = lambda spi, **kw: lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, spi, src, dst, **kw)
    r.req('a', 'ADD without KEY_ENCRYPT',
          lambda s, p: msg('ADD', SATYPE_ESP, s, p, ext_sa(0x9001), ext_addr(EXT_SRC, src),
                           ext_addr(EXT_DST, dst), ext_key(EXT_KEY_AUTH, 160)))
    r.req('a', 'ADD with LIFETIME_HARD only',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x9001, src, dst,
                              extra=[ext_lifetime(EXT_LT_HARD, 10)]))
    r.req('a', 'ADD v4 source, v6 destination',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x9001, src, V6[1]))
    r.req('a', 'ADD with the SA extension twice', sa(0x9001, extra=[ext_sa(0x9001)]))
    r.req('a', 'ADD with SA2 mode 4', sa(0x9001, sa2=(4, 0)))
    r.req('a', 'ADD without an SA extension',
          lambda s, p: msg('ADD', SATYPE_ESP, s, p, ext_addr(EXT_SRC, src), ext_addr(EXT_DST, dst),
                           ext_key(EXT_KEY_AUTH, 160), ext_key(EXT_KEY_ENC, 128)))
    r.req('a', 'ADD 0x9001 with an unknown extension 27', sa(0x9001, extra=[ext(27, b'\0' * 4)]))
    r.req('a', 'ADD 0x9002 replay 64 (capped at 32)', sa(0x9002, replay=64))
    r.req('a', 'ADD SPI 0', sa(0))
    r.req('a', 'EXPIRE from user space',
          lambda s, p: sa_msg('EXPIRE', SATYPE_ESP, s, p, 0x9001, src, dst, keys=False))
    r.req('a', 'X_SPDACQUIRE', lambda s, p: msg('X_SPDACQUIRE', SATYPE_UNSPEC, s, p))
    r.req('a', 'ACQUIRE nack (len 2, errno set): no reply',
          lambda s, p: msg('ACQUIRE', SATYPE_ESP, s, p)[:2] + bytes([22]) + msg('ACQUIRE', SATYPE_ESP, s, p)[3:])
    good = msg('FLUSH', SATYPE_AH, r.next_seq(), r.pid)
    r.bad('a', 'FLUSH with version 1', bytes([1]) + good[1:])
    r.bad('a', 'FLUSH with reserved 1', good[:6] + struct.pack('=H', 1) + good[8:])
    r.bad('a', 'message type 0', good[:1] + bytes([0]) + good[2:])
    r.bad('a', 'message type 25', good[:1] + bytes([25]) + good[2:])
    r.bad('a', 'sadb_msg_len 3 for 16 bytes', good[:4] + struct.pack('=H', 3) + good[6:])
    r.bad('a', '8 bytes', good[:8])


def sc_traffic(r):
    r.open('reg', 'obs')
    r.details = ('lt',)
    src, dst = '10.1.0.1', '10.1.0.2'
    r.req('reg', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('reg', 'SPDADD out 10.1.0.0/24 esp/transport/require', spdadd)
    r.req('reg', 'ADD 0x6001 packets soft 3 hard 5',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x6001, src, dst, packets=(3, 5)))
    r.req('reg', 'ADD 0x6002 packets soft 1 hard 100',
          lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x6002, src, dst, packets=(1, 100)))
    get = lambda spi: lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, spi, src, dst, keys=False)
    r.traffic(src, dst, 100)
    r.req('reg', 'GET 0x6002 (the newest carries it)', get(0x6002))
    r.req('reg', 'GET 0x6001', get(0x6001))
    r.traffic(src, dst, 100)
    r.traffic(src, dst, 100)
    r.req('reg', 'GET 0x6001 (0x6002 is dying: the older SA now)', get(0x6001))
    r.req('reg', 'DELETE 0x6002',
          lambda s, p: sa_msg('DELETE', SATYPE_ESP, s, p, 0x6002, src, dst, keys=False))
    r.traffic(src, dst, 100, count=5)
    r.req('reg', 'GET 0x6001 (hard-expired)', get(0x6001))
    r.traffic(src, dst, 100)


def sc_acquire_answer(r):
    r.open('reg', 'obs')
    src, dst = '10.1.0.1', '10.1.0.2'
    r.req('reg', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('reg', 'SPDADD out 10.1.0.0/24 esp/transport/require', spdadd)
    r.traffic(src, dst, 100)
    r.req_acq('reg', 'ADD 0x6101 with the acquire\'s seq',
              lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0x6101, src, dst))
    r.traffic(src, dst, 100)
    r.step('wait 5s: no larval state is left to expire', wait=5.0)
    r.req('reg', 'DUMP', lambda s, p: msg('DUMP', SATYPE_ESP, s, p))


def sc_promisc(r):
    """X_PROMISC: a raw copy of every request (the sender's own too) and of every message the
    kernel sends anyone, unicast replies and errors included; a target gets its own copy too."""
    r.open('a', 'obs', 'p')
    r.details = ('replay',)
    get = lambda spi: lambda s, p: sa_msg('GET', SATYPE_ESP, s, p, spi, *V4, keys=False)
    r.req('p', 'X_PROMISC on', lambda s, p: msg('X_PROMISC', 1, s, p))
    r.req('a', 'ADD 0xa001', lambda s, p: sa_msg('ADD', SATYPE_ESP, s, p, 0xa001, *V4))
    r.req('a', 'GET 0xa001: the reply to a is copied to p', get(0xa001))
    r.req('a', 'GET 0xa002 missing: the error too', get(0xa002))
    r.req('obs', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
    r.req('p', 'GET 0xa001 from p itself', get(0xa001))
    r.req('a', 'DUMP', lambda s, p: msg('DUMP', SATYPE_ESP, s, p))
    r.req('p', 'X_PROMISC off', lambda s, p: msg('X_PROMISC', 0, s, p))
    r.req('a', 'DELETE 0xa001',
          lambda s, p: sa_msg('DELETE', SATYPE_ESP, s, p, 0xa001, *V4, keys=False))


def esp_spdadd(seq, pid):
    """SPDADD out 10.7.0.1/32 -> 10.7.0.2/32, any protocol, esp/transport/require."""
    return msg('X_SPDADD', SATYPE_UNSPEC, seq, pid, ext_addr(EXT_SRC, ESP_A, 32, 255),
               ext_addr(EXT_DST, ESP_B, 32, 255), ext_policy())


def esp_sa(mtype, spi, keys=True):
    return lambda s, p: sa_msg(mtype, SATYPE_ESP, s, p, spi, ESP_A, ESP_B, keys=keys, replay=32)


def sc_esp_replay_window(r):
    """The legacy replay window (32, PF_KEY's cap): 1..5, 3 again, 100, 60 (too old), 99."""
    r.open_hosts()
    r.req('a', 'SPDADD out 10.7.0.1 -> 10.7.0.2 esp/transport/require', esp_spdadd)
    r.both('ADD 0xc001 replay 32', esp_sa('ADD', 0xc001))
    r.send(100)
    r.deliver(0xc001, [1, 2, 3, 4, 5, 3, 100, 60, 99])
    r.counters(0xc001)


def sc_esp_readd(r):
    """The SA deleted and re-added with the same SPI and keys on both hosts: the sender
    counts from 1 again and the receiver's window is empty, so an old packet is accepted
    again (the defect key schedule v2 removes)."""
    r.open_hosts()
    r.req('a', 'SPDADD out 10.7.0.1 -> 10.7.0.2 esp/transport/require', esp_spdadd)
    r.both('ADD 0xc101', esp_sa('ADD', 0xc101))
    r.send(3)
    r.deliver(0xc101, [1, 2, 3, 2])
    r.both('DELETE 0xc101', esp_sa('DELETE', 0xc101, keys=False))
    r.both('ADD 0xc101 again, same keys', esp_sa('ADD', 0xc101))
    r.send(1)
    r.deliver(0xc101, [2], old=True)
    r.deliver(0xc101, [1])
    r.deliver(0xc101, [1, 3], old=True)
    r.counters(0xc101)


def sc_esp_two_out(r):
    """Two outbound SAs of one flow: the newest add time carries it; each SA counts on its
    own, and traffic falls back to the older one, which goes on from where it was."""
    r.open_hosts()
    r.req('a', 'SPDADD out 10.7.0.1 -> 10.7.0.2 esp/transport/require', esp_spdadd)
    r.both('ADD 0xc201', esp_sa('ADD', 0xc201))
    r.send(2)
    r.step('wait 1.2s: the next SA has a later add time', wait=1.2)
    r.both('ADD 0xc202', esp_sa('ADD', 0xc202))
    r.send(3)
    r.req('a', 'DELETE 0xc202 on a', esp_sa('DELETE', 0xc202, keys=False))
    r.send(1)
    r.deliver(0xc201, [1, 2, 3])
    r.deliver(0xc202, [1, 2, 3, 2])
    r.counters(0xc201)
    r.counters(0xc202)


SCENARIOS = {
    'register': sc_register,
    'add_get_delete': sc_add_get_delete,
    'flush': sc_flush,
    'dump': sc_dump,
    'expire': sc_expire,
    'spd': sc_spd,
    'acquire': sc_acquire,
    'update': sc_update,
    'getspi': sc_getspi,
    'malformed': sc_malformed,
    'traffic': sc_traffic,
    'acquire_answer': sc_acquire_answer,
    'promisc': sc_promisc,
    'esp_replay_window': sc_esp_replay_window,
    'esp_readd': sc_esp_readd,
    'esp_two_out': sc_esp_two_out,
}

# Known, explained differences of a target from the golden (kernel) transcript:
# {target: {scenario: [(regex on a transcript line, reason)]}}. A line matching
# is dropped from both sides before the comparison, and reported.
EXCEPTIONS = {
    'sim': {},
    'kernel': {},
}


def filtered(lines, rules, report):
    out = []
    for line in lines:
        hit = next((why for pat, why in rules if re.search(pat, line)), None)
        if hit:
            report.append(f'  exception: {line.strip()}  ({hit})')
        else:
            out.append(line)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--target', choices=['kernel', 'sim'], required=True)
    ap.add_argument('--simd')
    ap.add_argument('--workdir', default='/tmp/conform')
    ap.add_argument('--update', action='store_true', help='write the goldens (kernel only)')
    ap.add_argument('scenarios', nargs='*')
    args = ap.parse_args()
    if args.update and args.target != 'kernel':
        ap.error('goldens come from the real kernel')
    if args.target == 'sim' and not args.simd:
        ap.error('--simd is required for the sim target')
    os.makedirs(args.workdir, exist_ok=True)
    target = (KernelTarget if args.target == 'kernel' else SimTarget)(args)
    passed = failed = 0
    try:
        for name in args.scenarios or SCENARIOS:
            target.reset()
            run = Run(target)
            try:
                SCENARIOS[name](run)
            finally:
                run.close()
            text = f'# scenario {name}\n' + '\n'.join(run.lines) + '\n'
            with open(os.path.join(args.workdir, f'{name}.{args.target}.txt'), 'w') as f:
                f.write(text)
            golden = os.path.join(GOLDEN, f'{name}.txt')
            if args.update:
                os.makedirs(GOLDEN, exist_ok=True)
                with open(golden, 'w') as f:
                    f.write(text)
                print(f'{name}: golden written')
                passed += 1
                continue
            want = open(golden).read().splitlines() if os.path.exists(golden) else ['(no golden)']
            report = []
            rules = EXCEPTIONS[args.target].get(name, [])
            got_f = filtered(text.splitlines(), rules, report)
            want_f = filtered(want, rules, [])
            if got_f == want_f:
                passed += 1
                print(f'{name}: PASS')
            else:
                failed += 1
                print(f'{name}: FAIL')
                sys.stdout.writelines(l + '\n' for l in difflib.unified_diff(
                    want_f, got_f, 'golden', args.target, lineterm=''))
            for line in report:
                print(line)
    finally:
        target.close()
    print(f'{passed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
