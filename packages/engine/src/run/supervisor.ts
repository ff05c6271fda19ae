/**
 * One VM at a time for `osvb watch --run`: each `boot(image)` stops the VM that runs (and waits
 * for it to exit), then boots a private copy of the image. The copy is why a build may update
 * usr.img in place while the old VM still reads it: the old VM keeps its own bytes until it is
 * replaced, and a failed build simply never calls `boot`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OsvbError } from '../errors/index.js';
import type { VmOptions, VmResult } from './qemu.js';
import { runVm } from './vm.js';

export type SupervisorEvent =
  | { type: 'vm-start'; image: string; index: number }
  | { type: 'vm-exit'; index: number; result: VmResult }
  | { type: 'vm-error'; index: number; error: OsvbError };

export class VmSupervisor {
  private current: { controller: AbortController; done: Promise<void>; index: number } | undefined;
  private queue: Promise<void> = Promise.resolve();
  private count = 0;

  constructor(
    private readonly options: Omit<VmOptions, 'image' | 'signal'>,
    private readonly onEvent: (e: SupervisorEvent) => void,
  ) {}

  /** Whether a VM is running now. */
  get running(): boolean {
    return this.current !== undefined;
  }

  /** Replace the running VM (if any) by one booted from a copy of `image`; resolves once it started. */
  boot(image: string): Promise<void> {
    this.queue = this.queue.then(() => this.replace(image));
    return this.queue;
  }

  /** Stop the running VM and wait for it. */
  stop(): Promise<void> {
    this.queue = this.queue.then(() => this.stopCurrent());
    return this.queue;
  }

  private async stopCurrent(): Promise<void> {
    const c = this.current;
    if (!c) return;
    c.controller.abort();
    await c.done;
  }

  private async replace(image: string): Promise<void> {
    await this.stopCurrent();
    const index = ++this.count;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'osvb-vm-'));
    const copy = path.join(dir, path.basename(image));
    try {
      fs.copyFileSync(image, copy);
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      this.onEvent({ type: 'vm-error', index, error: new OsvbError('OSVB_IO', `cannot copy ${image} to boot it: ${(e as NodeJS.ErrnoException).code ?? e}`) });
      return;
    }
    const controller = new AbortController();
    const entry = { controller, index, done: Promise.resolve() };
    entry.done = (async () => {
      try {
        const result = await runVm({ ...this.options, image: copy, signal: controller.signal });
        this.onEvent({ type: 'vm-exit', index, result });
      } catch (e) {
        this.onEvent({ type: 'vm-error', index, error: e instanceof OsvbError ? e : new OsvbError('OSVB_RUN_FAILED', String(e), { cause: e }) });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
        if (this.current === entry) this.current = undefined;
      }
    })();
    this.current = entry;
    this.onEvent({ type: 'vm-start', image, index });
  }
}
