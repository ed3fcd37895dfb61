#!/usr/bin/env python3
"""Chunked images against full images, in the same run (README "Benchmarks").

  tests/bench/chunked.py --build DIR --old ROOT --new ROOT [--work DIR] [--rounds N]
  tests/bench/chunked.py --build DIR --debian CACHE      (builds both roots with mmdebstrap)
  tests/bench/chunked.py --build DIR --old ROOT --derive PERCENT   (new = old, PERCENT of
                                                                     its files rewritten)
  ... --delta     the new image made with --base (the old root's image): delta frames

The new root is made into one zstd:chunked image (reimagectl image chunk),
served by nginx on 127.0.0.1.  Each round stages it on a fresh copy of the
old root (the machine runs the old image) twice through `reimage run`: as
a plain archive (kind "archive", the whole stream: the reference) and as a
chunked image (image.toc_sha256: the root's files reused, the rest fetched
by range).  Then both again on an empty root (a first image: nothing to
reuse, which must not be slower).  Bytes are what nginx sent
($body_bytes_sent); times are STAGE's (the engine's own "staged ... in X s")
and the whole run's wall time.  The staged trees of both ways are compared
entry by entry (tests/manifest.py).  Figures are printed as ratios to the
reference of the same run.  "space" is what the run took of the work
directory's volume (free space before and after, synced): on a file system
with reflinks (--work on XFS or btrfs), files taken from the root are
clones and take next to nothing.  Needs root.
"""
import argparse
import os
import random
import resource
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    """nginx serving www/, logging each request's bytes sent; stopped by PID."""

    def __init__(self, work):
        d = os.path.join(work, "nginx")
        self.www = os.path.join(work, "www")
        os.makedirs(d, exist_ok=True)
        os.makedirs(self.www, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(d, "access.log")
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""master_process off;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  log_format bench '$request_method $uri $status $body_bytes_sent';
  access_log {self.log} bench;
  default_type application/octet-stream;
  sendfile on;
  server {{ listen 127.0.0.1:{self.port}; root {self.www}; }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", d + "/", "-c", conf, "-e",
                                      d + "/error.log", "-g", "daemon off;"],
                                     stdin=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("nginx did not start")

    def lines(self):
        try:
            with open(self.log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def debian_roots(cache):
    """An older and a newer Debian 12 root, like a point release apart:
    bookworm as released (its last point release), and bookworm with its
    updates and security updates since then plus three packages more."""
    old, new = os.path.join(cache, "old"), os.path.join(cache, "new")
    mirror = "http://deb.debian.org/debian"
    if not os.path.isdir(old):
        sh(f"mmdebstrap --variant=important --mode=root --format=directory bookworm '{old}' "
           f"{mirror}")
    if not os.path.isdir(new):
        sh(f"mmdebstrap --variant=important --mode=root --format=directory "
           f"--include=curl,less,rsync bookworm '{new}' 'deb {mirror} bookworm main' "
           f"'deb {mirror} bookworm-updates main' "
           f"'deb http://deb.debian.org/debian-security bookworm-security main'")
    return old, new


def derive(old, new, percent):
    """new = old with percent of its regular files rewritten (same size,
    other bytes), a stand-in when no second root can be built."""
    sh(f"rm -rf '{new}' && cp -a '{old}' '{new}'")
    files = []
    for d, _, names in os.walk(new):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    rnd = random.Random(27)
    for p in rnd.sample(files, len(files) * percent // 100):
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.write(os.urandom(max(size, 1))[:size])


def job(path, url, extra):
    with open(path, "w") as f:
        f.write(f'id = "bench-chunked"; serial = 1; backend = "sandbox"; reboot = false;\n'
                f'trial: {{ guard = false; }};\n'
                f'image: {{ url = "{url}"; retry_delay_ms = 0; {extra} }};\n')


def free_bytes(path):
    os.sync()  # XFS frees a removed tree's blocks in the background until then
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def stage(build, work, ng, root_from, url, extra, tag):
    """One `reimage run` on a fresh copy of root_from (None: an empty
    root): (stage seconds, wall seconds, bytes nginx sent, requests, CPU
    seconds, bytes of the volume taken, log, root)."""
    root = os.path.join(work, "root-" + tag)
    sh(f"rm -rf '{root}'")
    if root_from:
        sh(f"cp -a '{root_from}' '{root}'")
    else:
        os.makedirs(os.path.join(root, "etc"))
    conf = os.path.join(work, "job.conf")
    job(conf, url, extra)
    before = len(ng.lines())
    free0 = free_bytes(work)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    env = dict(os.environ)
    env.setdefault("REIMAGE_PLUGIN_PATH", os.path.join(build, "plugins"))
    p = subprocess.run([os.path.join(build, "reimage"), "run", "-c", conf, "--root", root],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    if p.returncode != 0:
        sys.exit(f"reimage run failed ({tag}):\n{p.stdout}")
    m = re.search(r"staged \d+ entries, \d+ bytes of files from \d+ bytes of image in ([0-9.]+) s",
                  p.stdout)
    for _ in range(50):  # nginx logs a request once it is done
        lines = ng.lines()[before:]
        if lines:
            break
        time.sleep(0.1)
    sent = sum(int(line.split()[3]) for line in lines)
    taken = free0 - free_bytes(work)
    return float(m.group(1)), wall, sent, len(lines), cpu, taken, p.stdout, root


def manifest(root):
    return subprocess.run(["python3", os.path.join(TOP, "tests/manifest.py"), root],
                          stdout=subprocess.PIPE, check=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--old")
    ap.add_argument("--new")
    ap.add_argument("--debian", metavar="CACHE")
    ap.add_argument("--derive", type=int, metavar="PERCENT")
    ap.add_argument("--work", default="/tmp/reimage-bench-chunked")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--delta", action="store_true",
                    help="make the new image with --base OLD-IMAGE (delta frames)")
    a = ap.parse_args()
    if os.getuid() != 0:
        print("chunked.py: needs root (owners, devices in the roots)", file=sys.stderr)
        return 77
    if a.debian:
        a.old, a.new = debian_roots(a.debian)
    if not a.old or not (a.new or a.derive):
        ap.error("give --debian CACHE, or --old ROOT with --new ROOT or --derive PERCENT")
    sh(f"rm -rf '{a.work}' && mkdir -p '{a.work}'")
    if a.derive:
        a.new = os.path.join(a.work, "new")
        derive(a.old, a.new, a.derive)
    ng = Nginx(a.work)
    try:
        img = os.path.join(ng.www, "new.tar.zst")
        base = []
        if a.delta:
            base = ["--base", os.path.join(a.work, "old.tar.zst")]
            subprocess.run([os.path.join(a.build, "reimagectl"), "image", "chunk", a.old,
                            "-o", base[1]], stdout=subprocess.DEVNULL, check=True)
        out = subprocess.run([os.path.join(a.build, "reimagectl"), "image", "chunk", a.new,
                              "-o", img] + base, stdout=subprocess.PIPE, check=True,
                             text=True).stdout
        m = re.search(r'sha256 = "([0-9a-f]+)"; size = (\d+); toc_sha256 = "([0-9a-f]+)"', out)
        sha, size, toc = m.group(1), int(m.group(2)), m.group(3)
        url = f"http://127.0.0.1:{ng.port}/new.tar.zst"
        full = f'sha256 = "{sha}"; size = {size}; kind = "archive";'
        chunked = f'sha256 = "{sha}"; size = {size}; toc_sha256 = "{toc}";'
        sh(f"cat '{img}' > /dev/null")  # served from the page cache every time
        print(f"image: {size} bytes, {out.split(': ')[1].splitlines()[0]}; "
              f"old root {a.old}, new root {a.new}")
        rows = {}
        for scenario, root_from in (("point release", a.old), ("first image", None)):
            for r in range(a.rounds):
                for way, extra in (("full", full), ("chunked", chunked)):
                    st, wall, sent, reqs, cpu, taken, log, root = stage(a.build, a.work, ng,
                                                                        root_from, url, extra, way)
                    rows.setdefault((scenario, way), []).append((st, wall, sent, reqs, cpu, taken))
                    if way == "chunked":
                        line = re.search(r"stage: chunked image: .*", log)
                        if r == 0:
                            print(f"  {scenario}: {line.group(0) if line else log}")
                if r == 0:
                    same = manifest(os.path.join(a.work, "root-full")) == \
                        manifest(os.path.join(a.work, "root-chunked"))
                    print(f"  {scenario}: staged trees identical entry by entry: {same}")
                    if not same:
                        return 1
        print(f"\n{'scenario':<15} {'way':<8} {'bytes sent':>12} {'requests':>8} "
              f"{'STAGE s':>8} {'run s':>7} {'CPU s':>6} {'space MB':>8}   "
              f"ratios to full: bytes, STAGE, run, CPU, space")
        for scenario in ("point release", "first image"):
            ref = rows[(scenario, "full")]
            rb = statistics.median(x[2] for x in ref)
            rs = statistics.median(x[0] for x in ref)
            rw = statistics.median(x[1] for x in ref)
            rc = statistics.median(x[4] for x in ref)
            rt = statistics.median(x[5] for x in ref)
            for way in ("full", "chunked"):
                v = rows[(scenario, way)]
                b = statistics.median(x[2] for x in v)
                s = statistics.median(x[0] for x in v)
                w = statistics.median(x[1] for x in v)
                q = statistics.median(x[3] for x in v)
                c = statistics.median(x[4] for x in v)
                t = statistics.median(x[5] for x in v)
                print(f"{scenario:<15} {way:<8} {b:>12.0f} {q:>8.0f} {s:>8.2f} {w:>7.2f} {c:>6.2f}"
                      f" {t / 1e6:>8.1f}   {b / rb:.3f}, {s / rs if rs else 0:.2f}, {w / rw:.2f}, "
                      f"{c / rc:.2f}, {t / rt if rt > 0 else 0:.2f}")
        print(f"(medians of {a.rounds} rounds, each way run in turn on the same copy; STAGE "
              f"to 0.01 s; CPU: the run's user + system time; load average now "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    finally:
        ng.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
