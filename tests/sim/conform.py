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
"""
import argparse
import difflib
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


def ext_key(etype, bits):
    return ext(etype, struct.pack('=HH', bits, 0) + bytes(range(1, bits // 8 + 1)))


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


def sa_msg(mtype, satype, seq, pid, spi, src, dst, keys=True, enc=EALG_AESCBC, enc_bits=128,
           lifetimes=None):
    exts = [ext_sa(spi, enc=enc), ext_addr(EXT_SRC, src), ext_addr(EXT_DST, dst)]
    if keys:
        exts += [ext_key(EXT_KEY_AUTH, 160), ext_key(EXT_KEY_ENC, enc_bits)]
    if lifetimes:
        soft, hard = lifetimes
        exts += [ext_lifetime(EXT_LT_SOFT, soft), ext_lifetime(EXT_LT_HARD, hard)]
    return msg(mtype, satype, seq, pid, *exts)


def parse(data):
    """The fields a transcript shows: header, SPI/state, policy id, extension types in order."""
    version, mtype, err, satype, length, _res, seq, pid = struct.unpack_from('=BBBBHHII', data)
    out = {'type': TYPES.get(mtype, str(mtype)), 'errno': err, 'satype': satype, 'seq': seq,
           'pid': pid, 'exts': [], 'len_ok': length * 8 == len(data) and version == PF_KEY_V2}
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
        elif etype == EXT_POLICY:
            out['policy'] = struct.unpack_from('=I', data, off + 8)[0]
        off += elen * 8
    return out


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

    def reset(self):
        subprocess.run(['ip', 'xfrm', 'state', 'flush'], check=True)
        subprocess.run(['ip', 'xfrm', 'policy', 'flush'], check=True)

    def client(self, name):
        return Client(name, socket.socket(PF_KEY, socket.SOCK_RAW, PF_KEY_V2))

    def traffic(self, src, dst, nbytes):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((src, 0))
            try:
                u.sendto(b'x' * nbytes, (dst, 9999))
            except OSError:
                pass  # EAGAIN while an acquire is pending: not part of the transcript

    def close(self):
        pass


class SimTarget:
    """simd on the host: SOCK_SEQPACKET clients; traffic through its control socket."""
    name = 'sim'
    settle = 0.3

    def __init__(self, args):
        self.simd, self.dir = args.simd, args.workdir
        self.proc = None

    def reset(self):
        self.close()
        self.path = os.path.join(self.dir, 'pfkey.sock')
        self.ctl_path = os.path.join(self.dir, 'control.sock')
        for p in (self.path, self.ctl_path):
            if os.path.exists(p):
                os.unlink(p)
        self.proc = subprocess.Popen([self.simd, self.path, self.ctl_path, '--acq-expires', '3'])
        for _ in range(200):
            if os.path.exists(self.ctl_path):
                break
            time.sleep(0.02)
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ctl.connect(self.ctl_path)
        self.ctl_file = self.ctl.makefile('r')

    def client(self, name):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.path)
        return Client(name, s)

    def traffic(self, src, dst, nbytes):
        self.ctl.sendall(f'traffic {src} {dst} {nbytes}\n'.encode())
        self.ctl_file.readline()

    def close(self):
        if not self.proc:
            return
        self.ctl.sendall(b'quit\n')
        self.ctl_file.readline()
        self.ctl.close()
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(10)
        self.proc = None
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
        if m['type'] == 'ACQUIRE':
            seq = self.sym(self.acq_seqs, m['seq'], 'A')
        elif m['seq'] in self.our_seqs:
            seq = self.our_seqs[m['seq']]
        else:
            seq = str(m['seq'])
        pid = 'self' if m['pid'] == self.pid else str(m['pid'])
        s = f"  {name}: {m['type']} errno={m['errno']} satype={m['satype']} seq={seq} pid={pid}"
        if 'spi' in m:
            s += f" spi={m['spi']:#x} state={STATES.get(m['state'], m['state'])}"
        if 'policy' in m:
            s += f" policy={self.sym(self.policy_ids, m['policy'], 'P')}"
        s += f" exts={sorted(m['exts'])}"
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

    def close(self):
        for c in self.clients.values():
            c.close()


V4 = ('10.0.0.1', '10.0.0.2')
V6 = ('fd00::1', 'fd00::2')


def sc_register(r):
    r.open('a', 'b', 'c')
    r.req('a', 'REGISTER ESP', lambda s, p: msg('REGISTER', SATYPE_ESP, s, p))
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


SCENARIOS = {
    'register': sc_register,
    'add_get_delete': sc_add_get_delete,
    'flush': sc_flush,
    'dump': sc_dump,
    'expire': sc_expire,
    'spd': sc_spd,
    'acquire': sc_acquire,
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
