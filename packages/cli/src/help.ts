export const MAIN_HELP = `osvb — incremental, cached, parallel builds of OSv images

Usage:
  osvb build [WORDS…] [OPTIONS]      build the modules of an image and write OSv's outputs
  osvb manifest [WORDS…] [OPTIONS]   build, then print the expanded guest → host list
  osvb --help | --version

Run "osvb build --help" for the words and options.
`;

export const BUILD_HELP = `Usage: osvb build [WORDS…] [OPTIONS]

Builds like OSv's scripts/build (without the kernel): evaluates module.py files, runs
"make module" in every selected module that has a Makefile (dependencies first, in parallel)
and writes usr.manifest, bootfs.manifest, cmdline, javamains and 30-auto-NN to the build path.

Words (as scripts/build takes them):
  image=SPEC            an images/SPEC.py config, or modules a,b.runconfig,-c (no config defaults)
  modules=SPEC          like image= but config.json's "default" modules are added (unless !SPEC)
  fs=TYPE               zfs (default), rofs, ramfs, virtiofs, ext, rofs_with_zfs, rofs_with_ext
  usrskel=FILE          usr skeleton relative to the OSv base, or none
  export=none|selected|all   selected: only listed modules contribute files (--no-required)
  export_dir=DIR        where export= writes the guest tree
  --append-manifest     append BUILD/append.manifest (and append_cmdline when cmdline is empty)
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
  --keep-going          after a failed module, keep building the modules that do not need it
  --json                one JSON event per line on stdout
  -v, --verbose         show make output, module.py progress and stack traces
  -h, --help            this help

osvb manifest also takes --bootfs (print bootfs.manifest instead of usr.manifest).

Exit status: 0 success, 1 a build step failed (make, module.py exit), 2 bad input.
`;
