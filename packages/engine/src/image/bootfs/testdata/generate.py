#!/usr/bin/env python3
"""Regenerate the expected bootfs blobs from OSv's own scripts/mkbootfs.py (the oracle).

Usage: python3 generate.py /path/to/osv   (run by hand; the tests only read the results)

For every CASE.json here: materialise its tree in a temporary directory, run mkbootfs.py with
cwd = the case's build directory, and store CASE.bin and CASE.d. os.walk is wrapped to visit
names in sorted order, the order osvb uses by default, so the result does not depend on the
file system the fixture was created on.
"""
import json, os, subprocess, sys, tempfile, glob, shutil

HERE = os.path.dirname(os.path.abspath(__file__))

RUNNER = r'''
import os, sys, runpy
_walk = os.walk
def walk(top, *a, **k):
    for d, dn, fn in _walk(top, *a, **k):
        dn.sort(); fn.sort()
        yield d, dn, fn
os.walk = walk
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
'''

def pattern(n):
    return bytes(((i * 31) + (i >> 8)) & 0xFF for i in range(n))

def materialise(root, tree):
    for rel, spec in tree.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if spec.get("dir"):
            os.makedirs(p, exist_ok=True)
        elif "link" in spec:
            os.symlink(spec["link"], p)
        else:
            if "pattern" in spec:
                data = pattern(spec["pattern"])
            else:
                data = (spec["text"] * spec.get("repeat", 1)).encode()
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, spec.get("mode", 0o644))

def main():
    osv = sys.argv[1]
    mkbootfs = os.path.join(osv, "scripts", "mkbootfs.py")
    for case in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        c = json.load(open(case, encoding="utf-8"))
        name = os.path.splitext(os.path.basename(case))[0]
        with tempfile.TemporaryDirectory(prefix="osvb-gen-") as tmp:
            materialise(tmp, c["tree"])
            cwd = os.path.join(tmp, c["cwd"])
            os.makedirs(cwd, exist_ok=True)
            with open(os.path.join(tmp, "manifest"), "w", encoding="utf-8", newline="") as f:
                f.write(c["manifest"])
            args = [sys.executable, "-c", RUNNER, mkbootfs, "-o", "bootfs.bin", "-d", "bootfs.bin.d", "-m", "../manifest"]
            for k, v in c.get("defines", {}).items():
                args += ["-D", "%s=%s" % (k, v)]
            subprocess.run(args, cwd=cwd, check=True)
            shutil.copy(os.path.join(cwd, "bootfs.bin"), os.path.join(HERE, name + ".bin"))
            shutil.copy(os.path.join(cwd, "bootfs.bin.d"), os.path.join(HERE, name + ".d"))
            print("%s: %d bytes" % (name, os.path.getsize(os.path.join(HERE, name + ".bin"))))

if __name__ == "__main__":
    main()
