/**
 * A raw disk image (`usr.raw`): guest offset = file offset, a sparse file whose holes read as
 * zeros. Same write interface as Qcow2Image, so the disk writer does not care which it has.
 */
import * as fs from 'node:fs';
import { OsvbError } from '../../errors/index.js';

/** What the disk writer needs of an image file, raw or qcow2. */
export interface DiskTarget {
  write(guestOffset: number, data: Uint8Array): void;
  /** Copy a host file range to `guestOffset`; returns the bytes written to the image file. */
  copyFromFile(guestOffset: number, file: string, fileOffset: number, length: number): number;
  zero(guestOffset: number, length: number): void;
  read(guestOffset: number, length: number): Buffer;
  close(): void;
  readonly bytesWritten: number;
}

const CHUNK = 1 << 20;

function ioError(what: string, file: string, e: unknown): OsvbError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new OsvbError('OSVB_IO', `cannot ${what} ${file}: ${code}`, { cause: e });
}

function allZero(b: Buffer): boolean {
  // Compare 8 bytes at a time; most chunks of a fresh image are either data or all zeros.
  let i = 0;
  for (; i + 8 <= b.length; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  for (; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export class RawDisk implements DiskTarget {
  bytesWritten = 0;
  private constructor(
    private readonly file: string,
    private fd: number | undefined,
    /** A new file: its holes are zeros already, so zero chunks are skipped (the file stays sparse). */
    private readonly fresh: boolean,
  ) {}

  static create(file: string, virtualSize: number): RawDisk {
    let fd: number;
    try {
      fd = fs.openSync(file, 'w');
      fs.ftruncateSync(fd, virtualSize);
    } catch (e) {
      throw ioError('create', file, e);
    }
    return new RawDisk(file, fd, true);
  }

  /** Open for in-place writes; a string says why it cannot be (the caller writes anew). */
  static open(file: string, virtualSize: number): RawDisk | string {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r+');
    } catch (e) {
      return `cannot open it for update (${(e as NodeJS.ErrnoException).code ?? e})`;
    }
    if (fs.fstatSync(fd).size !== virtualSize) {
      fs.closeSync(fd);
      return 'its size is not the disk size';
    }
    return new RawDisk(file, fd, false);
  }

  private get handle(): number {
    if (this.fd === undefined) throw new OsvbError('OSVB_INTERNAL', `${this.file} is closed`);
    return this.fd;
  }

  write(guestOffset: number, data: Uint8Array): void {
    let o = 0;
    try {
      while (o < data.length) o += fs.writeSync(this.handle, data, o, data.length - o, guestOffset + o);
    } catch (e) {
      throw ioError('write', this.file, e);
    }
    this.bytesWritten += data.length;
  }

  copyFromFile(guestOffset: number, file: string, fileOffset: number, length: number): number {
    let src: number;
    try {
      src = fs.openSync(file, 'r');
    } catch (e) {
      throw ioError('read', file, e);
    }
    const before = this.bytesWritten;
    try {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(length, 1)));
      for (let done = 0; done < length; ) {
        const want = Math.min(buf.length, length - done);
        let got: number;
        try {
          got = fs.readSync(src, buf, 0, want, fileOffset + done);
        } catch (e) {
          throw ioError('read', file, e);
        }
        if (got === 0) throw new OsvbError('OSVB_IO', `${file} is shorter than expected (${fileOffset + done} of ${fileOffset + length} bytes): it changed during the write`);
        const chunk = buf.subarray(0, got);
        if (!(this.fresh && allZero(chunk))) this.write(guestOffset + done, chunk);
        done += got;
      }
    } finally {
      fs.closeSync(src);
    }
    return this.bytesWritten - before;
  }

  zero(guestOffset: number, length: number): void {
    if (this.fresh) return;
    const z = Buffer.alloc(Math.min(CHUNK, length));
    for (let done = 0; done < length; done += z.length) this.write(guestOffset + done, z.subarray(0, Math.min(z.length, length - done)));
  }

  read(guestOffset: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    try {
      fs.readSync(this.handle, b, 0, length, guestOffset);
    } catch (e) {
      throw ioError('read', this.file, e);
    }
    return b;
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fs.closeSync(fd);
    } catch (e) {
      throw ioError('close', this.file, e);
    }
  }
}
