export const MAIN_HELP = `osvb — incremental, cached, parallel builds of OSv images

Usage:
  osvb build [WORDS…] [OPTIONS]      build the modules of an image and write OSv's outputs
  osvb watch [WORDS…] [OPTIONS]      build, then rebuild on every change (Ctrl-C to stop)
  osvb manifest [WORDS…] [OPTIONS]   build, then print the expanded guest → host list
  osvb explain MODULE [WORDS…]       why MODULE will be rebuilt or restored
  osvb cache stats|gc|clean|verify   inspect and trim the local cache
  osvb rofs -m MANIFEST -o OUT       write a ROFS image (like scripts/gen-rofs-img.py)
  osvb rofs ls|cat|extract IMAGE …   read a ROFS image
  osvb bootfs -m MANIFEST -o OUT     write a bootfs blob (like scripts/mkbootfs.py)
  osvb export -e DIR -m MANIFEST     export a manifest's guest tree (like export_manifest.py)
  osvb run [IMAGE] [OPTIONS]         boot an image under QEMU (like scripts/run.py)
  osvb --help | --version

Run "osvb build --help" for the words and options, "osvb COMMAND --help" for the others.
`;

export const BUILD_HELP = `Usage: osvb build [WORDS…] [OPTIONS]

Builds like OSv's scripts/build: evaluates module.py files, runs "make module" in every
selected module that has a Makefile (dependencies first, in parallel) and writes usr.manifest,
bootfs.manifest, cmdline, javamains and 30-auto-NN to the build path. With a kernel
(--kernel DIR) it also writes the bootable usr.img (loader.img + ROFS partition + command
line), updated in place; "osvb run" boots it.

Words (as scripts/build takes them):
  image=SPEC            an images/SPEC.py config, or modules a,b.runconfig,-c (no config defaults)
  modules=SPEC          like image= but config.json's "default" modules are added (unless !SPEC)
  fs=TYPE               zfs (default), rofs, ramfs, virtiofs, ext, rofs_with_zfs, rofs_with_ext;
                        rofs* also write rofs.img (byte-identical to gen-rofs-img.py, updated
                        in place), and BUILD/fstab as scripts/build does
  usrskel=FILE          usr skeleton relative to the OSv base, or none
  export=none|selected|all   selected: only listed modules contribute files (--no-required)
  export_dir=DIR        where export= writes the guest tree (default <base>/build/export),
                        updated in place: unchanged files are not rewritten
  oci=DIR, --oci DIR    write an OCI image layout: one layer per module (plus skeleton and
                        generated files), deterministic tars; unchanged layers are not rewritten
  --append-manifest     append BUILD/append.manifest (and append_cmdline when cmdline is empty)
  fs_size=N, fs_size_mb=N   the size of usr.img in bytes / MiB (default 512 MiB)
  --create-disk         write a kernel-less disk.img (scripts/disk.bin + partition at 512)
                        instead of usr.img
  -jN, -j N, -j         jobs: passed to make ("make module -jN") and the number of modules built at once
  arch=x64|aarch64      ARCH for module builds (default: this machine's)
  mode=release|debug    mode for module builds; the default build path is build/<mode>
  NAME=value            exported to module.py and every make

Options:
  --osv-base DIR        the OSv base (default: $OSV_BASE, else the current directory)
  --build-path DIR      where outputs go (default: $OSV_BUILD_PATH, else <base>/build/<mode>)
  --compat=osv          reproduce OSv byte for byte on this machine: directory walks in the OS's
                        order and OSv's FileMap "**" quirk (default: sorted, reproducible walks)
  --libgcc-s-dir DIR    directory of libgcc_s.so.1 (default: found with gcc, like scripts/build)
  --kernel DIR|FILE     a prebuilt OSv kernel: a directory with a kernel build's outputs
                        (loader.img, libenviron.so, …; placed in the build path) or a
                        loader.img; with fs=rofs (ramfs, virtiofs) usr.img is written
  --image-format qcow2|raw   usr.img as qcow2 (default, like scripts/build) or usr.raw
  --require-image       fail when rofs.img or usr.img cannot be made (default: warn;
                        e.g. kernel files such as libenviron.so are not in the build path)
  --keep-going          after a failed module, keep building the modules that do not need it
  --cache-dir DIR       the local cache (default: $OSVB_CACHE_DIR, else <base>/.osvb/cache)
  --remote-cache URL    a Turborepo remote cache (/v8/artifacts API, e.g. turborepo-remote-cache)
                        behind the local one (default: $OSVB_REMOTE_CACHE_URL); token, team and
                        signing key from OSVB_REMOTE_CACHE_TOKEN, _TEAM, _SIGNATURE_KEY
  --remote-cache-mode read|write|read-write
                        read: never upload (untrusted branches); default read-write
                        ($OSVB_REMOTE_CACHE_MODE)
  --progress=auto|tty|plain|none
                        auto (default): a live status line on a terminal (modules done/total,
                        those in make, elapsed), plain lines in CI and pipes; none: warnings
                        and errors only
  --json                one JSON event per line on stdout
  -v, --verbose         show make output (replayed for restored modules), module.py progress,
                        and stack traces
  -h, --help            this help

osvb manifest also takes --bootfs (print bootfs.manifest instead of usr.manifest).

Each module with a Makefile is a cached action keyed by its input files (all files of its
directory not ignored by a .gitignore and not produced by its build), its variables, its
module.py record and the keys of the modules it requires: an unchanged module is restored from
the cache and make does not run; a changed one is rebuilt with every module that requires it.

Exit status: 0 success, 1 a build step failed (make, module.py exit), 2 bad input,
130 interrupted.
`;

export const EXPLAIN_HELP = `Usage: osvb explain MODULE [WORDS…] [OPTIONS]

Says whether MODULE's next build restores it from the cache or runs make, and what changed
since its last build in this OSv base: input files added, removed or changed, variables,
its module.py record, required modules. Takes the same words and options as osvb build
(use the same image words as the build you ask about; without words, the last build's words
are used, and said). --json prints one JSON object.

osvb explain kernel [WORDS…]: in an OSv source tree, whether the kernel will be up to date,
restored from the cache or built (make's own incremental build or make -B), and which of its
inputs changed since its last build.
`;

export const CACHE_HELP = `Usage: osvb cache COMMAND [--cache-dir DIR | --osv-base DIR] [--json]

Commands:
  stats                 number and size of blobs and action records
  gc --max-size SIZE    remove least recently used entries until the cache fits (500M, 2G, …)
  clean                 remove the whole cache
  verify                check every blob against its digest and every record; remove the
                        corrupt ones (exit status 1 when any was found)

The cache is $OSVB_CACHE_DIR, else <osv base>/.osvb/cache (--cache-dir overrides both).
`;

export const WATCH_HELP = `Usage: osvb watch [WORDS…] [OPTIONS]

Builds like osvb build, then watches every input of the image — the selected modules'
directories (minus .gitignored files and what their builds write), config.json and its
includes, images/, the skeleton manifests, files module.py read and files manifests pull in
from elsewhere — and rebuilds when one changes: the modules whose keys changed, their
dependents, then the outputs and images (rofs.img, export=, oci= updated in place). Changes
made during a build are taken by one follow-up build. A failed build is reported and watching
goes on. One line per build on stdout; Ctrl-C stops (make is stopped, the cache stays valid).

Words and options: as osvb build (see osvb build --help), plus
  --debounce MS         quiet time after a change before building (default 50)
  --json                one JSON event per line: engine events, {"type":"watch-build",…} per
                        build, {"type":"watching",…} when ready
  --run                 boot usr.img under QEMU after the first build and after every build
                        that changed it (needs --kernel DIR and fs=rofs): one VM at a time, the
                        old one stopped first; a failed build boots nothing. The VM boots a copy
                        of usr.img, so the next build can update it while the VM runs. The
                        serial console goes to stdout, "[vm]" notices to stderr
  --memsize MEM, --vcpus N, --forward RULE, --accel auto|kvm|tcg
                        the VM of --run, as osvb run's -m, -c, --forward, --accel
`;

export const RUN_HELP = `Usage: osvb run [IMAGE] [OPTIONS] [WORDS…] [-- QEMU ARGS…]

Boots an OSv image under qemu-system-x86_64, the common subset of OSv's scripts/run.py: a
virtio-blk disk, one virtio-net NIC on QEMU user networking, virtio-rng, the serial console
on stdout (osvb's own notices go to stderr). QEMU exits when the guest powers off, which OSv
does when its command line's programs return.

IMAGE (or -i IMAGE) is a usr.img (qcow2) or a raw image (told apart by their first bytes).
Without it: <build path>/usr.img (or usr.raw when only that exists), the build path found as
osvb build finds it from the same options and words (--osv-base, --build-path, mode=…).

Options:
  -e, --execute CMD     boot with this OSv command line instead of the image's; the image is
                        not changed (a temporary qcow2 overlay carries CMD). The image's
                        leading --rootfs=X is kept unless CMD has its own --rootfs=
  -m, --memsize MEM     guest memory, QEMU's -m (default 2G, as run.py)
  -c, --vcpus N         vCPUs (default 4, as run.py)
  --forward RULE        forward a host port to the guest (repeatable): QEMU's hostfwd form
                        [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (tcp::8080-:80),
                        or PORT, or HOSTPORT:GUESTPORT (tcp)
  --no-network          no NIC (QEMU -nic none; run.py --nics 0)
  --timeout S           stop the VM after S seconds: error OSVB_RUN_TIMEOUT, exit status 1
  --accel auto|kvm|tcg  auto (default): KVM when /dev/kvm opens read-write, else TCG (slow)
  --qemu-path BIN       the QEMU binary (default: $OSVB_QEMU, else qemu-system-x86_64)
  --block-device-cache MODE   none, writethrough, writeback, directsync or unsafe (default:
                        cache=none,aio=native; unsafe,aio=threads where O_DIRECT is refused)
  --pass-args ARGS      more QEMU arguments, split at blanks (repeatable); or after --
  --osv-base DIR        the OSv base (default: $OSV_BASE, else the current directory)
  --build-path DIR      the build path (default: $OSV_BUILD_PATH, else <base>/build/<mode>)
  -v, --verbose         print the QEMU command line and how the VM ended
  -h, --help            this help

When stdin is a terminal it is the guest's console input (QEMU: Ctrl-A x quits, Ctrl-A h
for more). Ctrl-C stops the VM.

Exit status: 0 the guest powered off, 1 timeout or QEMU failed, 2 bad input (no image, no
QEMU), 130 stopped by Ctrl-C.
`;
