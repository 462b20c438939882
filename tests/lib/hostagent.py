# SPDX-License-Identifier: ISC
"""One helper process per network namespace: wire capture, replay and UDP streams.

Forking python3 under `ip netns exec` costs seconds in User-Mode Linux, so
each host of a test gets one long-lived agent that keeps an ESP capture of
its veth end (esp.Capture) and a UDP receiver (udpstream.Receiver) running
for the whole test, and takes commands, one JSON object a line, on stdin:

    agent = Agent("a", "va", "192.0.2.1")       # the driver's side (spawns the agent)
    agent.start("send", stream="s1", dst="192.0.2.2", count=200, interval=0.01)
    other.start(...); agent.result(); other.result()   # two streams at once
    agent.call("arrivals", stream="s1")        # {"arrivals": [[t, seq], ...]}
    agent.call("wire")                         # {"esp": [[t, out, src, dst, spi, seq]],
                                               #  "udp": [[t, out, src, dst, dport]]}
    agent.call("replay", src=A, dst=B, t0=t0, t1=t1)  # ESP frames src->dst this end
                                               # sent in [t0, t1], sent again: {"n", "t"}
    agent.close()

Run as a script it is the agent: hostagent.py IFNAME ADDR.
"""
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import esp  # noqa: E402
import udpstream  # noqa: E402


def serve(ifname, addr):
    cap = esp.Capture(ifname)
    recv = udpstream.Receiver(addr)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        op = req.pop("op")
        if op == "send":
            sent = udpstream.send(req["stream"], (req["dst"], req.get("port", udpstream.PORT)),
                                  req["count"], req["interval"])
            res = {"sent": sent}
        elif op == "arrivals":
            res = {"arrivals": recv.arrivals(req["stream"])}
        elif op == "wire":
            res = {"esp": [], "udp": []}
            for t, out, frame in cap.records():
                p = esp.parse(frame)
                if p and p["proto"] == "esp":
                    res["esp"].append([t, out, p["src"], p["dst"], p["spi"], p["seq"]])
                elif p and p["proto"] == "udp":
                    res["udp"].append([t, out, p["src"], p["dst"], p["dport"]])
        elif op == "replay":
            frames = []
            for t, out, frame in cap.records():
                p = esp.parse(frame)
                if (out and p and p["proto"] == "esp" and p["src"] == req["src"] and
                        p["dst"] == req["dst"] and req["t0"] <= t <= req["t1"]):
                    frames.append(frame)
            t = time.time()
            for f in frames:
                cap.inject(f)
            res = {"n": len(frames), "t": t}
        elif op == "quit":
            print(json.dumps({}), flush=True)
            return
        else:
            res = {"error": f"unknown op {op}"}
        print(json.dumps(res), flush=True)


class Agent:
    """The driver's handle on the agent of namespace ns."""

    def __init__(self, ns, ifname, addr):
        self.ns = ns
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable,
                                   os.path.abspath(__file__), ifname, addr],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self.p.stdout.readline()
        if not hello:
            raise RuntimeError(f"the agent of namespace {ns} did not start")

    def start(self, op, **kw):
        """Send a command; read its reply later with result()."""
        self.p.stdin.write(json.dumps(dict(op=op, **kw)) + "\n")
        self.p.stdin.flush()

    def result(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"the agent of namespace {self.ns} died")
        return json.loads(line)

    def call(self, op, **kw):
        self.start(op, **kw)
        return self.result()

    def close(self):
        try:
            self.call("quit")
        except (RuntimeError, BrokenPipeError):
            pass
        self.p.wait(timeout=10)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
