/** `osvb run`: boot an OSv image under QEMU (the common subset of OSv's scripts/run.py). */
export {
  qemuArgv,
  parseForward,
  checkVmOptions,
  detectDiskFormat,
  directIoSupported,
  kvmProblem,
  qemuOptionValue,
  DEFAULT_CPUS,
  DEFAULT_MEMORY,
  DEFAULT_QEMU,
  type Accel,
  type BlockCache,
  type DiskFormat as VmDiskFormat,
  type QemuArgvInput,
  type VmNotice,
  type VmOptions,
  type VmResult,
  type VmStatus,
} from './qemu.js';
export { runVm, chooseAccel, qemuBinary, formatCommand } from './vm.js';
export { readImageCmdline, commandLineForExecute, createExecuteOverlay, cmdlineBytes, type Overlay } from './cmdline.js';
export { defaultRunImage, type DefaultImageOptions } from './defaultImage.js';
export { VmSupervisor, type SupervisorEvent } from './supervisor.js';
