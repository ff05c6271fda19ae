#!/bin/sh
# Prepare an OSv source checkout for `npm run test:kernel` (OSV_SRC): OSv and the submodules its
# kernel build needs, at the commits /work/shared/osv-kernel/README.md names, with OSv's git
# history and tags (scripts/osv-version.sh runs `git describe --tags`).
#
#   tools/kernel/prepare-osv.sh DIR [GIT_BASE]      # GIT_BASE default https://github.com
#
# Debian/Ubuntu packages the build needs besides make, gcc and g++:
#   apt-get install -y libboost-dev libboost-system-dev flex bison
set -eu
dir=$1
gh=${2:-https://github.com}
clone_at() { # url path commit
	git clone -q "$1" "$dir/$2"
	git -C "$dir/$2" checkout -q "$3"
}
git clone -q "$gh/cloudius-systems/osv" "$dir"
git -C "$dir" checkout -q 0e34e4dc2b278b7f64e4169abbf297b7de46fb6b
clone_at "$gh/cloudius-systems/acpica" external/x64/acpica 3e45e0f2383cabdc00275c00a12ea8797f285c30
clone_at "$gh/osvunikernel/musl" musl_1.2.1 73cc775bee53300c7cf759f37580220b18ac13d3
# musl_0.9.12 is needed too: seven files under libc/ are links into it.
clone_at "$gh/osvunikernel/musl" musl_0.9.12 372a948b8139c6583045b2cd91b6b91fcb2e5881
clone_at "$gh/osvunikernel/kbuild-standalone" kbuild 9f1d27a86879d1fa0944f426f5fa20c6be8de9da
echo "OSv source tree ready in $dir ($(git -C "$dir" describe --tags --match 'v[0-9]*'))"
