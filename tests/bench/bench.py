#!/usr/bin/env python3
"""bench.py -- the engine's benchmarks: outage, staging speed, memory, fleet.

Run by tests/bench/run.sh (which builds, checks root and owns the scratch
directory), never by hand.  Every figure is measured against its reference
in the same run, interleaved round by round, on a journaled ext4 made fresh
for each measurement (mkfs on a loop file: no measurement inherits another's
deleted tree or dirty pages), and printed as median (min/max) over rounds,
with the per-round ratio engine/reference.

  outage   the SWAP phase ("swap: N entries in X \u00b5s" from `reimage run`, sandbox
           backend) for generated images of 1,000 / 10,000 / 100,000 files
           and for the ~1 GB /usr image; reference: bench-swapref, the same
           renames/exchanges with one syncfs, on the same swapped root.
  staging  `reimage run` of the /usr image (wall time + sync, and the CPU
           time of every process) from the file, with each STAGE writer
           (reimage's, libarchive's), and from nginx on 127.0.0.1, against
           the pipelines that do what STAGE does, hash included:
           cat | tee >(openssl dgst -sha256) | tar --zstd -x (GNU tar),
           the same into bsdtar -x, and curl | tee ... | tar --zstd -x.
  syscalls system calls per entry (strace -f -c, every process and thread)
           of `reimage run` with each writer and of the GNU tar and bsdtar
           pipelines, on the quick /usr image (strace slows what it counts:
           these runs are not timed).
  memory   peak RSS of those runs (/usr/bin/time); idle RSS of polling agents.
  fleet    N `reimage agent` processes with sandbox roots polling one nginx
           job store, re-imaged at once: time to all committed, and the
           store's request rate from nginx's access log, extrapolated;
           then the store's load at 100,000 agents, replayed by h2load
           (the agents' request mix at their rate: throughput, p99
           latency, errors, and the most nginx answers); then `reimagectl
           status` and `agents` over 10,000 and 100,000 synthetic reports
           in a directory store served by nginx.
"""
import argparse
import hashlib
import json
import os
import re
import resource
import shutil
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

ARGS = None
COMMIT = "unknown"
BIN = {}
ENV = dict(os.environ)


def note(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def sh(cmd, **kw):
    """Run a shell command (bash: the reference uses >(...)); fail loudly."""
    r = subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], env=ENV,
                       capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {cmd}\n{r.stdout}{r.stderr}")
    return r


def cpu_of_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd):
    """Wall seconds of a shell command followed by sync, the CPU seconds
    (user + system) of all its processes, and its output."""
    c0, t0 = cpu_of_children(), time.monotonic()
    r = sh(cmd + "; sync")
    return time.monotonic() - t0, cpu_of_children() - c0, r


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def spread(values, fmt="{:.2f}"):
    """median (min/max) of a list of numbers."""
    if not values:
        return "n/a"
    return (fmt.format(statistics.median(values)) + " (" + fmt.format(min(values)) + "/"
            + fmt.format(max(values)) + ")")


# ------------------------------------------------------------ scratch volume

class Volume:
    """A journaled ext4 on a loop file, made anew for each measurement."""

    def __init__(self, work, size):
        self.img = os.path.join(work, "volume.img")
        self.mnt = os.path.join(work, "mnt")
        self.size = size
        os.makedirs(self.mnt, exist_ok=True)

    def mounted(self):
        return subprocess.run(["mountpoint", "-q", self.mnt]).returncode == 0

    def fresh(self):
        self.close()
        sh(f"truncate -s {self.size} '{self.img}'")
        # No lazy init: a background inode-table writer would run during
        # the measurement.
        sh(f"mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 '{self.img}'")
        sh(f"mount -o loop '{self.img}' '{self.mnt}'")
        return self.mnt

    def close(self):
        if self.mounted():
            sh(f"umount '{self.mnt}'")
        if os.path.exists(self.img):
            os.unlink(self.img)


# ------------------------------------------------------------------ test data

# 20 top-level entries, as a Debian root has: the outage's goal is stated
# for that many.
SKELETON_DIRS = ["boot", "dev", "etc/network", "home/alice", "media", "mnt", "opt", "proc",
                 "root", "run", "srv/data", "sys", "tmp", "var/log", "var/lib", "usr"]
SKELETON_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}


def make_skeleton(d, marker):
    """The top level of a Linux root, with what the benchmark job preserves."""
    for sub in SKELETON_DIRS:
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for name, target in SKELETON_LINKS.items():
        if not os.path.lexists(os.path.join(d, name)):
            os.symlink(target, os.path.join(d, name))
    for rel, text in {"etc/hostname": marker + "-host\n", "etc/os-release": marker + "\n",
                      "etc/network/interfaces": "iface eth0 inet dhcp\n",
                      "srv/data/d.bin": marker + " data\n",
                      "home/alice/notes.txt": "notes\n"}.items():
        with open(os.path.join(d, rel), "w") as f:
            f.write(text)


def usr_entries(max_entries, max_bytes):
    """A deterministic slice of this machine's /usr: real files, sorted by
    name, from the trees every Debian has; files over 32 MiB skipped; it
    stops at max_entries or max_bytes."""
    out, total = ["usr", "usr/lib"], 0
    for top in ["usr/include", "usr/share", "usr/lib/python3", "usr/lib/x86_64-linux-gnu",
                "usr/bin", "usr/sbin"]:
        for dirpath, dirs, files in os.walk("/" + top):
            dirs.sort()
            if os.path.ismount(dirpath):
                dirs[:] = []
                continue
            out.append(dirpath[1:])
            for name in sorted(files):
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                if st.st_size > 32 << 20:
                    continue
                out.append(p[1:])
                total += st.st_size
                if len(out) >= max_entries or total >= max_bytes:
                    return out
    return out


def cached(cache, name, build):
    """The archive cache/name and its description, built once by build(tmp)."""
    path = os.path.join(cache, name)
    meta = path + ".json"
    if not os.path.exists(meta):
        note(f"building test image {name} (cached under {cache})")
        os.makedirs(cache, exist_ok=True)
        tmp = path + ".tmp"
        build(tmp)
        listing = sh(f"tar --zstd -tvf '{tmp}' | "
                     "awk '$6 != \"./\" {n++; s+=$3} END {print n, s}'")
        entries, nbytes = listing.stdout.split()
        os.rename(tmp, path)
        with open(meta, "w") as f:
            json.dump({"sha256": sha256_of(path), "size": os.path.getsize(path),
                       "entries": int(entries), "bytes": int(nbytes)}, f)
    with open(meta) as f:
        info = json.load(f)
    info["path"] = path
    return info


def usr_image(cache, quick, entries=None):
    """The /usr image: 5,000 entries (quick), 100,000 (~1 GB), or entries
    of the same mean size."""
    if entries:
        nbytes = entries * (1 << 30) // 100000
    else:
        entries, nbytes = (5000, 64 << 20) if quick else (100000, 1 << 30)
    name = f"usr-{entries}.tar.zst"

    def build(tmp):
        skel = os.path.join(cache, "skeleton")
        shutil.rmtree(skel, ignore_errors=True)
        make_skeleton(skel, "new")
        lst = tmp + ".list"
        with open(lst, "w") as f:
            f.write("\n".join(usr_entries(entries, nbytes)) + "\n")
        plain = tmp + ".tar"
        sh(f"cd '{skel}' && find . -mindepth 1 ! -path ./usr | sort > '{lst}.skel' && "
           f"tar --numeric-owner --no-recursion -cf '{plain}' -T '{lst}.skel' && "
           f"tar --numeric-owner --no-recursion -C / -rf '{plain}' -T '{lst}' && "
           f"zstd -q -3 -T0 --rm '{plain}' -o '{tmp}'")
        os.unlink(lst)
        os.unlink(lst + ".skel")
        shutil.rmtree(skel)
    return cached(cache, name, build)


def generated_image(cache, nfiles):
    """A root of nfiles small files (sizes 0..8 KiB, fixed content), 100 to a
    folder, spread over the top-level entries like a real root's."""
    name = f"gen-{nfiles}.tar.zst"

    def build(tmp):
        tree = tmp + ".d"
        shutil.rmtree(tree, ignore_errors=True)
        make_skeleton(tree, "new")
        block = bytes(range(256)) * 32
        tops = ["usr/share", "usr/lib", "usr/include", "etc", "var/lib", "opt", "boot"]
        weights = [55, 25, 8, 5, 4, 2, 1]
        i = 0
        for top, w in zip(tops, weights):
            count = nfiles * w // 100 if top != "boot" else nfiles - i
            for k in range(count):
                d = os.path.join(tree, top, f"d{k // 100:04d}")
                if k % 100 == 0:
                    os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, f"f{k % 100:02d}"), "wb") as f:
                    f.write(block[:(i * 7919) % 8192])
                i += 1
        sh(f"tar --numeric-owner --owner=0 --group=0 --mtime=@1700000000 --sort=name "
           f"-C '{tree}' -cf - . | zstd -q -3 -T0 -o '{tmp}'")
        shutil.rmtree(tree)
    return cached(cache, name, build)


# --------------------------------------------------------------- the engine

def write_job(path, job_id, url, image, extra=""):
    with open(path, "w") as f:
        f.write(f'id = "{job_id}";\nserial = 1;\nbackend = "sandbox";\n'
                f'image: {{ url = "{url}"; sha256 = "{image["sha256"]}"; '
                f'size = {image["size"]}; }};\n'
                'preserve: { mode = "move"; paths = [ "srv/data", "etc/hostname" ]; };\n'
                # The test images have no init for the boot guard to run.
                'trial: { guard = false; };\n'
                f"{extra}")


def reimage_run(mnt, url, image, tag, writer=None, wrap=""):
    """`reimage run` of image into a sandbox root that is the fresh volume's
    own root, as a machine's is: wall seconds (with a final sync, as the
    references), peak RSS, the engine's own staging seconds and swap
    milliseconds.  writer: forces a STAGE writer ("at", "libarchive");
    wrap: a command the engine runs under (strace)."""
    root = mnt
    make_skeleton(root, "old")
    os.makedirs(os.path.join(root, "opt/legacy"))
    job = os.path.join(os.path.dirname(mnt), "job.conf")
    write_job(job, f"bench-{tag}", url, image)
    # The engine hands libarchive each entry's absolute path, whose every
    # component its symlink check visits (3 syscalls each, per entry): on
    # a machine that is /.reimage/new/..., so the run sees the volume at
    # /srv in a private mount namespace, not at the scratch directory's
    # longer path (which would cost 9 syscalls more per entry).
    env = f"env REIMAGE_STAGE_WRITER={writer} " if writer else ""
    secs, cpu, r = timed(f"unshare -m --propagation private sh -c \"mount --bind '{root}' /srv && "
                    f"exec {env}/usr/bin/time -f 'bench-maxrss %M' {wrap}'{BIN['reimage']}' run "
                    f"-c '{job}' --root /srv\"")
    log = r.stderr
    staged = re.search(r"staged (\d+) entries.* in ([0-9.]+) s", log)
    swapped = re.search(r"swapped (\d+) exchanged, (\d+) retired, (\d+) added, (\d+) preserved",
                        log)
    swap_us = re.search(r"swap: (\d+) entries in (\d+) \u00b5s", log)
    rss = re.search(r"bench-maxrss (\d+)", log)
    if not (staged and swapped and swap_us and rss):
        raise RuntimeError("unexpected output of reimage run:\n" + log)
    if int(staged.group(1)) != image["entries"]:
        raise RuntimeError(f"staged {staged.group(1)} entries, image has {image['entries']}")
    if open(os.path.join(root, "etc/hostname")).read() != "old-host\n":
        raise RuntimeError("the preserved etc/hostname is not the old one")
    return {"wall": secs, "cpu": cpu, "rss_kb": int(rss.group(1)),
            "staged_s": float(staged.group(2)), "swap_ms": int(swap_us.group(2)) / 1000.0,
            "ops": sum(int(swapped.group(k)) for k in range(1, 5)), "root": root}


def swap_reference(root):
    """bench-swapref on the root the engine just swapped: its exchanges, in
    reverse, plus the preserves, with one syncfs."""
    r = sh(f"'{BIN['swapref']}' '{root}' '{root}/.reimage/old' srv/data etc/hostname")
    _ops, ms = r.stdout.split()
    return float(ms)


# --------------------------------------------------------------------- nginx

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    """nginx on 127.0.0.1 serving www/ (images) and www/dav/ (the job store),
    logging "$msec $method $uri $status" per request; stopped by its PID."""

    def __init__(self, work):
        self.dir = os.path.join(work, "nginx")
        self.www = os.path.join(work, "www")
        os.makedirs(os.path.join(self.www, "dav"), exist_ok=True)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.log = os.path.join(self.dir, "access.log")
        d = self.dir
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""master_process off;
error_log {d}/error.log;
pid {d}/nginx.pid;
worker_rlimit_nofile 4096;
events {{ worker_connections 2048; }}
http {{
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  log_format bench '$msec $request_method $uri $status';
  keepalive_requests 100000;
  access_log {self.log} bench;
  default_type application/octet-stream;
  sendfile on;
  server {{
    listen 127.0.0.1:{self.port};
    root {self.www};
    location /dav/ {{ dav_methods PUT DELETE; create_full_put_path on;
                     autoindex on; autoindex_format json; }}
  }}
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
        raise RuntimeError("nginx did not start:\n" + open(d + "/error.log").read())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path}"

    def serve(self, name, path):
        link = os.path.join(self.www, name)
        if not os.path.lexists(link):
            os.symlink(path, link)
        return self.url(name)

    def requests(self, t0, t1):
        """(method, uri, status) of the requests logged between t0 and t1
        (wall clock)."""
        out = []
        with open(self.log) as f:
            for line in f:
                msec, method, uri, status = line.split()
                if t0 <= float(msec) <= t1:
                    out.append((method, uri, status))
        return out

    def cpu(self):
        """CPU seconds (user + system) nginx has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------ the benchmarks

def bench_outage(vol, cache, results):
    sizes = [1000] if ARGS.quick else [1000, 10000, 100000]
    images = {n: generated_image(cache, n) for n in sizes}
    rows = {n: {"engine": [], "ref": [], "ratio": []} for n in sizes}
    for rnd in range(ARGS.rounds):
        for n in sizes:
            mnt = vol.fresh()
            run = reimage_run(mnt, images[n]["path"], images[n], f"outage-{n}-{rnd}")
            ref = swap_reference(run["root"])
            rows[n]["engine"].append(run["swap_ms"])
            rows[n]["ref"].append(ref)
            rows[n]["ratio"].append(run["swap_ms"] / ref if ref > 0 else float("nan"))
            rows[n]["ops"] = run["ops"]
            note(f"outage {n} files, round {rnd + 1}: swap {run['swap_ms']} ms, "
                 f"reference {ref:.1f} ms")
    results["outage"] = rows


def staging_methods(archive, url):
    """name -> function(mnt) returning a dict with at least 'wall'."""
    def ref(cmd):
        def run(mnt):
            os.makedirs(f"{mnt}/x")
            secs, cpu, _ = timed(cmd.format(dir=f"{mnt}/x"))
            return {"wall": secs, "cpu": cpu}
        return run
    return {
        "reimage file": lambda mnt: reimage_run(mnt, archive["path"], archive, "file"),
        "reimage file, libarchive": lambda mnt: reimage_run(mnt, archive["path"], archive,
                                                            "file", writer="libarchive"),
        "cat|tee sha256|tar": ref(pipeline(f"cat '{archive['path']}'", "tar")),
        "cat|tee sha256|bsdtar": ref(pipeline(f"cat '{archive['path']}'", "bsdtar")),
        "reimage http": lambda mnt: reimage_run(mnt, url, archive, "http"),
        "curl|tee sha256|tar": ref(pipeline(f"curl -sSf '{url}'", "tar")),
    }


def pipeline(source, tar):
    """What STAGE does, by the tools: read, hash (OpenSSL's EVP, as the
    engine), decompress and extract with numeric owners, into {dir}; the
    hash's process substitution waited for."""
    x = ("tar --numeric-owner --zstd -x -C '{dir}'" if tar == "tar"
         else "bsdtar --numeric-owner -x -f - -C '{dir}'")
    return f"{source} | tee >(openssl dgst -sha256 > '{{dir}}.sha256') | {x}; wait $!"


def bench_staging(vol, ng, archive, results):
    methods = staging_methods(archive, ng.serve("image.tar.zst", archive["path"]))
    names = list(methods)
    rows = {name: [] for name in names}
    sh(f"cat '{archive['path']}' > /dev/null")  # every run reads it from the page cache
    for rnd in range(ARGS.rounds):
        # A different order each round: no method always follows the same one.
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            mnt = vol.fresh()
            m = methods[name](mnt)
            rows[name].append(m)
            note(f"staging round {rnd + 1}: {name}: {m['wall']:.2f} s, CPU {m['cpu']:.2f} s"
                 + (f", peak RSS {m['rss_kb'] // 1024} MiB, swap {m['swap_ms']} ms"
                    if "rss_kb" in m else ""))
    results["staging"] = rows


def strace_calls(path):
    """Total system calls of an `strace -f -c -o path` summary."""
    with open(path) as f:
        for line in f:
            cols = line.split()
            if cols and cols[-1] == "total":
                return int(cols[3])
    raise RuntimeError(f"no total in {path}")


def bench_syscalls(vol, cache, results):
    archive = usr_image(cache, True)
    rows = {}
    out = os.path.join(os.path.dirname(vol.mnt), "strace.txt")
    for name, writer in [("reimage run, reimage's writer", "at"),
                         ("reimage run, libarchive's writer", "libarchive")]:
        mnt = vol.fresh()
        reimage_run(mnt, archive["path"], archive, "strace", writer=writer,
                    wrap=f"strace -f -c -o '{out}' ")
        rows[name] = strace_calls(out) / archive["entries"]
    for name, tar in [("cat|tee sha256|tar", "tar"), ("cat|tee sha256|bsdtar", "bsdtar")]:
        mnt = vol.fresh()
        os.makedirs(f"{mnt}/x")
        cmd = pipeline(f"cat '{archive['path']}'", tar).format(dir=f"{mnt}/x")
        sh(f"strace -f -c -o '{out}' bash -c " + shlex.quote("set -o pipefail; " + cmd))
        rows[name] = strace_calls(out) / archive["entries"]
    for name, per in rows.items():
        note(f"syscalls: {name}: {per:.1f} per entry")
    results["syscalls"] = {"entries": archive["entries"], "per_entry": rows}


def fleet_agent(d, i, store, pub):
    root = f"{d}/pc-{i}/root"
    make_skeleton(root, "old")
    os.makedirs(f"{root}/var/lib/reimage", mode=0o700, exist_ok=True)
    conf = f"{d}/pc-{i}/agent.conf"
    with open(conf, "w") as f:
        f.write(f'agent_id = "pc-{i}";\ngroups = [ "lab" ];\nroot = "{root}";\n'
                f'backend = "sandbox";\nstate_dir = "{root}/var/lib/reimage";\n'
                f'store = "{store}";\ntrusted_keys = [ "{pub}" ];\n'
                f"poll_interval = {ARGS.poll_interval};\npoll_jitter = {ARGS.poll_jitter};\n")
    return conf


def start_agent(conf):
    log = open(os.path.join(os.path.dirname(conf), "agent.log"), "a")
    return subprocess.Popen([BIN["reimage"], "agent", "-c", conf], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, env=ENV)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def bench_fleet(vol, ng, cache, results):
    n = ARGS.agents
    mnt = vol.fresh()
    d = f"{mnt}/fleet"
    os.makedirs(d)
    # Small images for a large fleet: the volume holds every root twice
    # (old and new) and 2 GB have 131,072 inodes.
    files = 1000 if n <= 50 else 100
    image = generated_image(cache, files)
    url = ng.serve(f"fleet-{files}.tar.zst", image["path"])
    store = ng.url("dav/store")
    key, pub = f"{d}/admin.key", f"{d}/admin.pub"
    sh(f"'{BIN['reimagectl']}' keygen '{key}' '{pub}'")
    confs = [fleet_agent(d, i, store, pub) for i in range(1, n + 1)]
    procs = [start_agent(c) for c in confs]
    try:
        # Idle: every agent polls its documents, none exists yet.
        time.sleep(ARGS.poll_interval + ARGS.poll_jitter + 1)
        t0 = time.time()
        time.sleep(ARGS.idle_seconds)
        t1 = time.time()
        idle = ng.requests(t0, t1)
        idle_rss = [rss_kb(p.pid) for p in procs]
        dead = [c for c, p in zip(confs, procs) if p.poll() is not None]
        if dead:
            raise RuntimeError(f"agents stopped while idle: {dead[:3]}")
        job = f"{d}/job.conf"
        write_job(job, "fleet", url, image)
        members = ",".join(f"pc-{i}" for i in range(1, n + 1))
        start = time.time()
        sh(f"'{BIN['reimagectl']}' submit -s '{store}' -k '{key}' '{job}' --agents {members}")
        # Its log goes to a file: a pipe nobody reads before it ends would
        # fill (a line per agent and change) and stop it.
        wait_log = open(f"{d}/wait.log", "w+")
        waiter = subprocess.Popen(
            ["bash", "-c", f"'{BIN['reimagectl']}' wait -s '{store}' fleet --timeout "
             f"{ARGS.fleet_timeout} --interval 1"], stdout=wait_log,
            stderr=subprocess.STDOUT, text=True, env=ENV)
        booted = [False] * n
        while waiter.poll() is None:
            # An agent stops after its swap ("reboot"); start it again, as
            # the new image's service would be, to confirm.
            for i, p in enumerate(procs):
                if p.poll() is not None and not booted[i]:
                    if p.returncode != 0:
                        raise RuntimeError(f"agent pc-{i + 1} exited {p.returncode}; see "
                                           f"{os.path.dirname(confs[i])}/agent.log")
                    booted[i] = True
                    procs[i] = start_agent(confs[i])
            time.sleep(0.05)
        done = time.time()
        wait_log.seek(0)
        out = wait_log.read()
        if waiter.returncode != 0:
            raise RuntimeError(f"reimagectl wait exited {waiter.returncode}:\n{out}")
        rollout = ng.requests(start, done)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    # Each poll reads the agent's own document once (and its groups'):
    # the former count the polls, all of them the requests.
    polls = sum(1 for r in idle if r[0] == "GET" and re.search(r"/jobs/pc-\d+\.job$", r[1]))
    per_poll = len(idle) / polls
    results["fleet"] = {
        "agents": n, "image_files": files, "seconds": done - start, "idle_window": t1 - t0,
        "idle_requests": len(idle), "polls": polls, "requests_per_poll": per_poll,
        "poll_period": (t1 - t0) * n / polls,
        "extrapolated_rps": 100000 * per_poll / (60 + 30 / 2),
        "rollout_requests": len(rollout),
        "rollout_by_kind": {k: sum(1 for r in rollout if r[0] == k)
                            for k in sorted({r[0] for r in rollout})},
        "idle_rss_kb": idle_rss,
    }


# The agents' request mix at 100,000 agents (docs/remote.md): a poll every
# 60 s + 0..30 s of jitter (75 s on average) reads the agent's own job
# document and its group's, and, waiting in a rollout, its wave's state,
# all conditional (304); the latest report is written every `heartbeat`
# (3600 s) when nothing happens.
FLEET = 100000
POLLS_PER_S = FLEET / 75
HEARTBEATS_PER_S = FLEET / 3600


def h2load(name, d, urls, rate, seconds, extra=()):
    """h2load (HTTP/1.1, as the agents speak) on urls at rate requests/s
    (0: as fast as it can) for seconds, in the background; its per-request
    log in d/name.log.  Returns (Popen, log path)."""
    lst = f"{d}/{name}.urls"
    with open(lst, "w") as f:
        f.write("\n".join(urls) + "\n")
    log = f"{d}/{name}.log"
    cmd = ["h2load", "--h1", "-D", str(seconds), "-i", lst, "--log-file", log, *extra]
    if rate:
        # Clients of 10 requests/s each: --rps paces every connection.
        clients = max(1, round(rate / 10))
        cmd += ["-c", str(clients), "--rps", f"{rate / clients:.3f}"]
    else:
        cmd += ["-c", "64", "-m", "1"]
    out = open(f"{d}/{name}.out", "w")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), log


def h2load_figures(name, d, seconds):
    """Requests done, errors (failed, errored, timed out, 4xx, 5xx), rate
    and latency percentiles (ms) of an h2load run."""
    text = open(f"{d}/{name}.out").read()
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not m or not c:
        raise RuntimeError(f"h2load {name}: no figures in its output:\n{text}")
    lat = []
    with open(f"{d}/{name}.log") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                lat.append(int(parts[2]) / 1000)
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(len(lat) * p / 100))] if lat else float("nan")
    done = int(m.group(3))
    return {"done": done, "rate": done / seconds,
            "errors": int(m.group(5)) + int(m.group(6)) + int(m.group(7)) + int(c.group(3))
            + int(c.group(4)), "2xx": int(c.group(1)), "3xx": int(c.group(2)),
            "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": lat[-1] if lat else float("nan")}


def bench_fleet_load(ng, results):
    """The store's load at 100,000 agents, replayed against nginx by h2load:
    the mix at its rate for a while (is the throughput held, at what
    latency, with errors?), then the same GETs as fast as they go."""
    if not shutil.which("h2load"):
        raise RuntimeError("h2load is missing (sh tests/deps.sh installs nghttp2-client)")
    seconds = 5 if ARGS.quick else 30
    d = os.path.join(ARGS.work, "load")
    os.makedirs(d, exist_ok=True)
    store = os.path.join(ng.www, "dav", "load")
    # 1,000 agents' documents stand for 100,000: what nginx does per
    # request does not depend on which file.  Same size and mtime: one
    # ETag, so that one If-None-Match makes every poll a 304, as it is for
    # an agent that holds its documents.
    doc = b"reimage-signed-job 1\n" + b"x" * 1200
    for rel in [f"jobs/a{i}.job" for i in range(1000)] + ["jobs/group-lab.job",
                                                          "rollouts/load/wave-2.json"]:
        path = os.path.join(store, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(doc)
        os.utime(path, (1700000000, 1700000000))
    os.makedirs(os.path.join(store, "reports"), exist_ok=True)
    etag = f'If-None-Match: "{1700000000:x}-{len(doc):x}"'
    report_body = f"{d}/report.json"
    with open(report_body, "w") as f:
        f.write(json.dumps({"agent": "a0", "job": "", "serial": 0, "phase": "IDLE",
                            "state": "idle", "time": int(time.time()), "version": "0"}))
    base = ng.url("dav/load")
    mix = {
        "job": ([f"{base}/jobs/a{i}.job" for i in range(1000)], POLLS_PER_S, ["-H", etag]),
        "group": ([f"{base}/jobs/group-lab.job"], POLLS_PER_S, ["-H", etag]),
        "wave": ([f"{base}/rollouts/load/wave-2.json"], POLLS_PER_S, ["-H", etag]),
        "report": ([f"{base}/reports/a{i}.json" for i in range(1000)], HEARTBEATS_PER_S,
                   ["-H", ":method: PUT", "-d", report_body]),
    }
    cpu0, t0 = ng.cpu(), time.monotonic()
    runs = {k: h2load(k, d, urls, rate, seconds, extra) for k, (urls, rate, extra) in mix.items()}
    for k, (p, _log) in runs.items():
        if p.wait() != 0:
            raise RuntimeError(f"h2load {k} exited {p.returncode}: "
                               f"{open(f'{d}/{k}.out').read()}")
    cpu1, t1 = ng.cpu(), time.monotonic()
    held = {k: dict(h2load_figures(k, d, seconds), target=mix[k][1]) for k in mix}
    # The most: the three polled GETs mixed, 64 connections, no pacing.
    urls = mix["job"][0] + mix["group"][0] * 100 + mix["wave"][0] * 100
    p, _log = h2load("max", d, urls, 0, seconds, ["-H", etag])
    cpu2 = ng.cpu()
    if p.wait() != 0:
        raise RuntimeError(f"h2load max exited {p.returncode}: {open(f'{d}/max.out').read()}")
    most = h2load_figures("max", d, seconds)
    most["nginx_cpu"] = (ng.cpu() - cpu2) / seconds
    results["fleet_load"] = {"agents": FLEET, "seconds": seconds, "mix": held,
                             "nginx_cpu": (cpu1 - cpu0) / (t1 - t0), "max": most}


def write_fleet_store(store, n, job):
    """A directory store as n agents leave it after a job: the index submit
    writes, each agent's report on the job and its latest report (the same
    document), agents.json.  States by agent number: committed mostly,
    some failed, running, cancelled; every 50th has not reported."""
    now = int(time.time())
    agents = [f"pc-{i:06d}" for i in range(1, n + 1)]
    os.makedirs(f"{store}/reports/{job}", exist_ok=True)
    os.makedirs(f"{store}/rollouts", exist_ok=True)
    docs = [{"agent": a, "url": f"STORE/jobs/{a}.job"} for a in agents]
    with open(f"{store}/rollouts/{job}.json", "w") as f:
        json.dump({"job": job, "serial": 7, "agents": agents, "group": None,
                   "documents": docs, "submitted": now - 600, "not_after": now + 86400}, f)
    with open(f"{store}/agents.json", "w") as f:
        json.dump(agents, f, separators=(",", ":"))
    states = ["committed"] * 16 + ["failed", "running", "cancelled", "pending"]
    for i, a in enumerate(agents):
        if i % 50 == 49:
            continue
        state = states[i % len(states)]
        text = json.dumps({"agent": a, "job": job, "serial": 7, "phase": "COMMIT",
                           "state": state, "progress": {"done": 1 << 20, "total": 1 << 20},
                           "error": "", "message": "", "time": now - i % 3600,
                           "started": now - 500, "version": "0.1.0"})
        for path in (f"{store}/reports/{job}/{a}.json", f"{store}/reports/{a}.json"):
            with open(path, "w") as f:
                f.write(text)


def bench_fleet_status(ng, results):
    """reimagectl status and agents over a fleet's reports in a directory
    store served by nginx (reports read 16 at a time over HTTP), and from
    the directory itself (one after the other)."""
    rows = {}
    for n in ([1000] if ARGS.quick else [10000, 100000]):
        store = os.path.join(ng.www, "dav", f"status-{n}")
        shutil.rmtree(store, ignore_errors=True)
        t = time.monotonic()
        write_fleet_store(store, n, "bench")
        note(f"fleet store of {n:,} agents written in {time.monotonic() - t:.1f} s")
        url = ng.url(f"dav/status-{n}")
        row = {}
        for name, args in [("status", f"status -s {url} bench"),
                           ("status --json", f"status -s {url} bench --json"),
                           ("agents", f"agents -s {url}"),
                           ("agents --json", f"agents -s {url} --json"),
                           ("status, directory", f"status -s '{store}' bench"),
                           ("agents, directory", f"agents -s '{store}'")]:
            t0 = time.time()
            c0, m0 = cpu_of_children(), time.monotonic()
            tt, out = f"{ARGS.work}/time.txt", f"{ARGS.work}/out.txt"
            r = sh(f"/usr/bin/time -f 'rss %M' '{BIN['reimagectl']}' {args} -q 2>'{tt}' "
                   f">'{out}' || {{ cat '{tt}'; exit 1; }}; cat '{tt}'; tail -n 1 '{out}'")
            wall, cpu = time.monotonic() - m0, cpu_of_children() - c0
            rss = int(re.search(r"rss (\d+)", r.stdout).group(1))
            reqs = len(ng.requests(t0, time.time())) if "directory" not in name else 0
            row[name] = {"wall": wall, "cpu": cpu, "rss_kb": rss, "requests": reqs,
                         "last_line": r.stdout.strip().splitlines()[-1]}
        rows[n] = row
        shutil.rmtree(store, ignore_errors=True)
    results["fleet_status"] = rows


# ------------------------------------------------------------------- report

def report(results, archive):
    lines = []
    p = lines.append
    if "outage" in results:
        p("Outage: the SWAP phase (plan check, renames, preserves, one syncfs, one "
          "journal commit), ms")
        p(f"  {'image':<28} {'engine':>18} {'reference':>20} {'ratio':>18}")
        for n, row in results["outage"].items():
            label = f"{n:,} files ({row['ops']} ops)"
            p(f"  {label:<28} "
              f"{spread(row['engine'], '{:.1f}'):>18} {spread(row['ref'], '{:.1f}'):>20} "
              f"{spread(row['ratio']):>18}")
        sizes = sorted(results["outage"])
        if len(sizes) > 1:
            lo, hi = results["outage"][sizes[0]], results["outage"][sizes[-1]]
            p(f"  median swap {sizes[-1]:,} files / {sizes[0]:,} files: "
              f"{statistics.median(hi['engine']) / statistics.median(lo['engine']):.2f}")
        st = results.get("staging")
        if st:
            eng = [m["swap_ms"] for k in ("reimage file", "reimage http") for m in st[k]]
            p(f"  {'/usr image, ' + str(archive['entries']) + ' entries':<28} "
              f"{spread(eng, '{:.0f}'):>18}")
    if "staging" in results:
        st = results["staging"]
        gb = archive["bytes"] / 1e9
        p(f"Staging: {archive['entries']:,} entries, {gb:.2f} GB of files, "
          f"{archive['size'] / 1e6:.0f} MB tar.zst; seconds")
        p(f"  {'':<22} {'wall time + sync':>22} {'CPU (user + system)':>22}")
        for name, runs in st.items():
            extra = ""
            if "staged_s" in runs[0]:
                extra = f"  (STAGE alone {spread([m['staged_s'] for m in runs])})"
            p(f"  {name:<22} {spread([m['wall'] for m in runs]):>22} "
              f"{spread([m['cpu'] for m in runs]):>22}{extra}")
        for a, b in [("reimage file", "cat|tee sha256|tar"),
                     ("reimage file", "cat|tee sha256|bsdtar"),
                     ("reimage http", "curl|tee sha256|tar"),
                     ("reimage file", "reimage file, libarchive")]:
            wall = [x["wall"] / y["wall"] for x, y in zip(st[a], st[b])]
            cpu = [x["cpu"] / y["cpu"] for x, y in zip(st[a], st[b])]
            p(f"  ratio {a} / {b}: wall {spread(wall)}, CPU {spread(cpu)}")
        rss = [m["rss_kb"] / 1024 for k in ("reimage file", "reimage http") for m in st[k]]
        if "load" in results:
            p("  load average (1/5/15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f"
              % tuple(results["load"]["staging"]))
        p(f"Memory: peak RSS of reimage run while staging: {spread(rss, '{:.1f}')} MiB")
    if "syscalls" in results:
        sc = results["syscalls"]
        p(f"System calls per entry (strace -f -c, all processes; quick /usr image, "
          f"{sc['entries']:,} entries)")
        for name, per in sc["per_entry"].items():
            p(f"  {name:<34} {per:6.1f}")
    if "fleet" in results:
        f = results["fleet"]
        p(f"Memory: idle RSS of a polling reimage agent: "
          f"{spread([k / 1024 for k in f['idle_rss_kb']], '{:.1f}')} MiB")
        p(f"Fleet: {f['agents']} agents re-imaged at once, submit to all committed: "
          f"{f['seconds']:.1f} s; {f['rollout_requests']} requests to the store meanwhile "
          f"({', '.join(f'{k} {v}' for k, v in f['rollout_by_kind'].items())})")
        p(f"  idle polling: {f['idle_requests']} requests in {f['idle_window']:.1f} s, "
          f"{f['polls']} polls, {f['requests_per_poll']:.2f} requests per poll, one poll "
          f"every {f['poll_period']:.2f} s per agent (interval {ARGS.poll_interval} s + "
          f"jitter 0..{ARGS.poll_jitter} s)")
        p(f"  100,000 agents at 60 s + 0..30 s jitter: {f['extrapolated_rps']:,.0f} requests/s")
    if "fleet" in results.get("load", {}):
        p("  load average (1/5/15 min) before the store's load: %.2f %.2f %.2f, after the "
          "status runs: %.2f %.2f %.2f" % tuple(results["load"]["fleet"]))
    if "fleet_load" in results:
        fl = results["fleet_load"]
        p(f"Store load at {fl['agents']:,} agents (h2load --h1 against nginx, "
          f"{fl['seconds']} s; nginx used {fl['nginx_cpu']:.2f} CPU meanwhile)")
        p(f"  {'request':<10} {'target/s':>9} {'held/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'errors':>7}")
        for k, m in fl["mix"].items():
            p(f"  {k:<10} {m['target']:>9.1f} {m['rate']:>9.1f} {m['p50_ms']:>8.2f} "
              f"{m['p99_ms']:>8.2f} {m['max_ms']:>8.2f} {m['errors']:>7}")
        m = fl["max"]
        p(f"  the polled GETs unpaced, 64 connections: {m['rate']:,.0f} requests/s, p99 "
          f"{m['p99_ms']:.2f} ms, {m['errors']} errors, nginx {m['nginx_cpu']:.2f} CPU")
    if "fleet_status" in results:
        p("reimagectl over a fleet's reports (nginx on 127.0.0.1, 16 requests at once; "
          "the directory itself, one after the other)")
        p(f"  {'agents':>8} {'command':<20} {'wall s':>8} {'CPU s':>7} {'RSS MiB':>8} "
          f"{'requests':>9}")
        for n, row in results["fleet_status"].items():
            for name, m in row.items():
                p(f"  {n:>8,} {name:<20} {m['wall']:>8.2f} {m['cpu']:>7.2f} "
                  f"{m['rss_kb'] / 1024:>8.1f} {m['requests']:>9,}")
    return "\n".join(lines)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", required=True, help="scratch directory (loop file, nginx)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--agents", type=int)
    ap.add_argument("--only", default="outage,staging,syscalls,fleet")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--entries", type=int,
                    help="staging: a /usr image of this many entries (~11 KB each)")
    ARGS = ap.parse_args()
    # SIGTERM unwinds like an error: servers, agents and mounts are released.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ARGS.build = os.path.abspath(ARGS.build)
    global COMMIT
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run(["git", "-C", top, "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    COMMIT = r.stdout.strip() or "unknown"
    ARGS.rounds = ARGS.rounds or (2 if ARGS.quick else 5)
    ARGS.agents = ARGS.agents or (4 if ARGS.quick else 50)
    ARGS.poll_interval, ARGS.poll_jitter = 1, 1
    ARGS.idle_seconds = 4 if ARGS.quick else 20
    ARGS.fleet_timeout = 120 if ARGS.quick else 900
    BIN.update(reimage=f"{ARGS.build}/reimage", reimagectl=f"{ARGS.build}/reimagectl",
               swapref=f"{ARGS.build}/bench-swapref")
    ENV["REIMAGE_PLUGIN_PATH"] = f"{ARGS.build}/plugins"
    cache = os.path.join(ARGS.build, "bench-data")
    only = set(ARGS.only.split(","))

    # The usr image only for what stages it.
    archive = (usr_image(cache, ARGS.quick, ARGS.entries)
               if only & {"outage", "staging", "syscalls"} else None)
    vol = Volume(ARGS.work, "2G" if ARGS.quick or (ARGS.entries or 0) <= 30000 else "8G")
    ng = Nginx(ARGS.work)
    results = {}
    try:
        if "outage" in only:
            bench_outage(vol, cache, results)
        if "staging" in only:
            load0 = os.getloadavg()
            bench_staging(vol, ng, archive, results)
            results.setdefault("load", {})["staging"] = load0 + os.getloadavg()
        if "syscalls" in only:
            bench_syscalls(vol, cache, results)
        if "fleet" in only:
            bench_fleet(vol, ng, cache, results)
            load0 = os.getloadavg()
            bench_fleet_load(ng, results)
            bench_fleet_status(ng, results)
            results.setdefault("load", {})["fleet"] = load0 + os.getloadavg()
    finally:
        ng.stop()
        vol.close()
    text = report(results, archive)
    print(f"reimage benchmarks ({'quick' if ARGS.quick else 'full'}, {ARGS.rounds} rounds, "
          f"median (min/max); ratio = reimage / reference in the same round; "
          f"commit {COMMIT})")
    print(text)
    if ARGS.json:
        for row in results.get("staging", {}).values():
            for m in row:
                m.pop("root", None)
        with open(ARGS.json, "w") as f:
            json.dump(results, f, indent=1, default=str)


if __name__ == "__main__":
    main()
