#!/usr/bin/env python3
"""Make OCI images for the source tests, the way container tools lay them
out, from layer tarballs the test made (GNU tar keeps xattrs, ACLs,
capabilities and holes; whiteouts are the empty files .wh.NAME and
.wh..wh..opq in a layer's tree).

usage:
  oci.py layout OUT [--tag T] [--arch A] [--index] LAYER.tar...
      an OCI image layout: gzip layers, config, manifest, index.json
      (with --index, the manifest sits in an image index beside an entry
      for another platform, as multi-platform images have it)
  oci.py docker-archive OUT [--tag NAME:TAG] LAYER.tar...
      a `docker save` tarball (manifest.json, <id>/layer.tar, <hex>.json)
  oci.py push LAYOUT URL NAME:TAG [--token FILE]
      push a layout's image to a registry (distribution API v2, http)
  oci.py token KEY CERT NAME
      a registry bearer token (JWT, RS256, the certificate in its x5c) that
      lets its holder pull and push repository NAME; service
      "reimage-test", issuer "reimage-test-issuer"
  oci.py set-digest LAYOUT DIGEST
      make index.json point at DIGEST (a hostile layout)
  oci.py swap-member TARBALL N FILE
      replace the N-th layer of a docker-archive by FILE's bytes, leaving
      manifest.json and the config as they were (a tampered tarball)
Prints the digest of the first document (index or manifest) on stdout.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def blob(layout, data):
    digest = sha(data)
    path = os.path.join(layout, "blobs", "sha256", digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest


def config_for(arch, diff_ids):
    return json.dumps({"architecture": arch, "os": "linux",
                       "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}},
                      sort_keys=True).encode()


def layout(out, tag, arch, with_index, layers):
    os.makedirs(out, exist_ok=True)
    descs, diff_ids = [], []
    for path in layers:
        raw = open(path, "rb").read()
        diff_ids.append("sha256:" + sha(raw))
        packed = gzip.compress(raw, mtime=0)
        descs.append({"mediaType": LAYER, "digest": blob(out, packed), "size": len(packed)})
    cfg = config_for(arch, diff_ids)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": {"mediaType": CONFIG, "digest": blob(out, cfg),
                                      "size": len(cfg)},
                           "layers": descs}).encode()
    top = {"mediaType": MANIFEST, "digest": blob(out, manifest), "size": len(manifest),
           "platform": {"os": "linux", "architecture": arch}}
    if with_index:
        # Another platform's image (no layers): chosen, it would stage nothing.
        other_cfg = config_for("s390x", [])
        other = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                            "config": {"mediaType": CONFIG, "digest": blob(out, other_cfg),
                                       "size": len(other_cfg)}, "layers": []}).encode()
        index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": MANIFEST, "digest": blob(out, other), "size": len(other),
             "platform": {"os": "linux", "architecture": "s390x"}}, top]}).encode()
        top = {"mediaType": INDEX, "digest": blob(out, index), "size": len(index)}
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [top]}, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return top["digest"]


def docker_archive(out, tag, layers):
    members, names, diff_ids = [], [], []
    for path in layers:
        raw = open(path, "rb").read()
        diff_ids.append("sha256:" + sha(raw))
        name = sha(raw + b"id") + "/layer.tar"
        members.append((name, raw))
        names.append(name)
    cfg = config_for("amd64" if os.uname().machine == "x86_64" else "arm64", diff_ids)
    cfg_name = sha(cfg) + ".json"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": [tag], "Layers": names}]).encode()
    # docker save writes the layers first and manifest.json last.
    members += [(cfg_name, cfg), ("manifest.json", manifest)]
    with tarfile.open(out, "w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return "sha256:" + sha(open(out, "rb").read())


def swap_member(tarball, n, path):
    with tarfile.open(tarball) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    layers = json.loads(dict((m.name, d) for m, d in members)["manifest.json"])[0]["Layers"]
    data = open(path, "rb").read()
    with tarfile.open(tarball, "w") as t:
        for m, d in members:
            if m.name == layers[n - 1]:
                d = data
                m.size = len(d)
            t.addfile(m, io.BytesIO(d))


TOKEN = None


def request(method, url, data=None, ctype=None):
    req = urllib.request.Request(url, data=data, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    if TOKEN:
        req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req) as r:
        return r.headers


def push(layout_dir, url, ref):
    name, tag = ref.rsplit(":", 1)
    index = json.load(open(os.path.join(layout_dir, "index.json")))
    top = index["manifests"][0]
    blobs = os.path.join(layout_dir, "blobs", "sha256")

    def read(digest):
        return open(os.path.join(blobs, digest[7:]), "rb").read()

    def put_blob(digest):
        location = request("POST", "%s/v2/%s/blobs/uploads/" % (url, name))["Location"]
        if location.startswith("/"):
            location = url + location
        sep = "&" if "?" in location else "?"
        request("PUT", location + sep + "digest=" + digest, read(digest),
                "application/octet-stream")

    def put_manifest(desc, reference):
        doc = json.loads(read(desc["digest"]))
        if doc.get("mediaType") == INDEX:
            for m in doc["manifests"]:
                put_manifest(m, m["digest"])
        else:
            put_blob(doc["config"]["digest"])
            for layer in doc["layers"]:
                put_blob(layer["digest"])
        request("PUT", "%s/v2/%s/manifests/%s" % (url, name, reference), read(desc["digest"]),
                doc["mediaType"])

    put_manifest(top, tag)
    return top["digest"]


def token(key, cert, name):
    import base64
    import subprocess
    import time

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
    now = int(time.time())
    claims = {"iss": "reimage-test-issuer", "sub": "reimage-test", "aud": "reimage-test",
              "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "t%d" % now,
              "access": [{"type": "repository", "name": name, "actions": ["pull", "push"]}]}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                         capture_output=True, check=True).stdout
    return signing + "." + b64(sig)


def main():
    global TOKEN
    args = sys.argv[1:]
    opts = {"--tag": "latest", "--arch": None, "--token": None}
    flags = set()
    rest = []
    i = 0
    while i < len(args):
        if args[i] in opts:
            opts[args[i]] = args[i + 1]
            i += 2
        elif args[i] == "--index":
            flags.add(args[i])
            i += 1
        else:
            rest.append(args[i])
            i += 1
    cmd = rest[0]
    arch = opts["--arch"] or ("amd64" if os.uname().machine == "x86_64" else "arm64")
    if cmd == "layout":
        print(layout(rest[1], opts["--tag"], arch, "--index" in flags, rest[2:]))
    elif cmd == "docker-archive":
        print(docker_archive(rest[1], opts["--tag"], rest[2:]))
    elif cmd == "push":
        if opts["--token"]:
            TOKEN = open(opts["--token"]).read().strip()
        print(push(rest[1], rest[2], rest[3]))
    elif cmd == "token":
        print(token(rest[1], rest[2], rest[3]))
    elif cmd == "swap-member":
        swap_member(rest[1], int(rest[2]), rest[3])
    elif cmd == "set-digest":
        path = os.path.join(rest[1], "index.json")
        index = json.load(open(path))
        index["manifests"][0]["digest"] = rest[2]
        json.dump(index, open(path, "w"))
    else:
        raise SystemExit(__doc__)


main()
