#!/usr/bin/env python3
"""Regenerate the expected export trees from OSv's own scripts/export_manifest.py (the oracle).

Usage: python3 generate.py /path/to/osv   (run by hand; the tests only read the results)

For every CASE.json here: materialise its tree in a temporary directory, run
export_manifest.py with cwd = the case's build directory (os.walk wrapped to visit names
sorted, the order osvb uses by default), and describe the exported tree in
CASE.expected.json: every path with its kind, a file's permission bits and SHA-256, a link's
target; plus the `[ERR]` lines it printed.
"""
import glob, hashlib, json, os, subprocess, sys, tempfile

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

def materialise(root, tree):
    for rel, spec in tree.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if spec.get("dir"):
            os.makedirs(p, exist_ok=True)
        elif "link" in spec:
            os.symlink(spec["link"], p)
        else:
            with open(p, "wb") as f:
                f.write((spec["text"] * spec.get("repeat", 1)).encode())
            os.chmod(p, spec.get("mode", 0o644))

def describe(top):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, top)
            if os.path.islink(p):
                out.append({"path": rel, "kind": "link", "target": os.readlink(p)})
            elif os.path.isdir(p):
                out.append({"path": rel, "kind": "dir"})
            else:
                data = open(p, "rb").read()
                out.append({"path": rel, "kind": "file", "mode": os.stat(p).st_mode & 0o7777,
                            "sha256": hashlib.sha256(data).hexdigest()})
    return sorted(out, key=lambda e: e["path"].encode())

def main():
    osv = sys.argv[1]
    script = os.path.join(osv, "scripts", "export_manifest.py")
    for case in sorted(glob.glob(os.path.join(HERE, "*.json"))):
        if case.endswith(".expected.json"):
            continue
        c = json.load(open(case, encoding="utf-8"))
        name = os.path.splitext(os.path.basename(case))[0]
        with tempfile.TemporaryDirectory(prefix="osvb-gen-") as tmp:
            materialise(tmp, c["tree"])
            cwd = os.path.join(tmp, c["cwd"])
            os.makedirs(cwd, exist_ok=True)
            with open(os.path.join(tmp, "manifest"), "w", encoding="utf-8", newline="") as f:
                f.write(c["manifest"])
            args = [sys.executable, "-c", RUNNER, script, "-e", "../export", "-m", "../manifest"]
            for k, v in c.get("defines", {}).items():
                args += ["-D", "%s=%s" % (k, v)]
            r = subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)
            errs = [l for l in r.stdout.splitlines() if l.startswith("[ERR]")]
            result = {"tree": describe(os.path.join(tmp, "export")), "errors": errs}
            with open(os.path.join(HERE, name + ".expected.json"), "w", encoding="utf-8") as f:
                json.dump(result, f, ensure_ascii=False, indent=1)
                f.write("\n")
            print("%s: %d paths, %d errors" % (name, len(result["tree"]), len(errs)))

if __name__ == "__main__":
    main()
