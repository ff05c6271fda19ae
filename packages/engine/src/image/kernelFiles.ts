/**
 * What OSv's kernel build leaves in the build directory that the image steps read: loader.img,
 * and the files OSv's skeletons map from the build directory (`/libenviron.so: libenviron.so`).
 * No module makes them — the kernel make does (or `--kernel` places them).
 */
export const KERNEL_BUILD_FILES: readonly string[] = ['loader.img', 'libenviron.so', 'libvdso.so', 'tools/mount/mount-fs.so', 'tools/mount/umount.so'];
