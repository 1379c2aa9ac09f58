/**
 * Buffers of the compute threads' answers that are done with (row blocks written or sent, tiles placed),
 * kept to be moved back to a thread with a later task, of the same job or the next, and written again
 * instead of new ones. A new
 * buffer costs its pages, zeroed by the kernel on first touch, and once dropped a share of a full
 * garbage collection on the thread that dropped it (V8 collects after every 64 MB or so of new external
 * memory): a P = 6154 job's row blocks and tiles were some 230 MB of new buffers. Each buffer kept goes
 * to one task only; at most `limitBytes` are kept.
 */
export class SpareBuffers {
  private readonly buffers: ArrayBuffer[] = [];
  private bytes = 0;

  constructor(private readonly limitBytes: number) {}

  /** Keeps a buffer nothing reads or writes any more (not a moved one, now empty, nor a shared one). */
  give(buffer: ArrayBufferLike): void {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0 || this.bytes + buffer.byteLength > this.limitBytes) return;
    this.buffers.push(buffer);
    this.bytes += buffer.byteLength;
  }

  /** The smallest kept buffer of `bytes` to twice that (a larger one would move memory that sits unused), or null. */
  take(bytes: number): ArrayBuffer | null {
    let best = -1;
    this.buffers.forEach((buffer, i) => {
      const length = buffer.byteLength;
      if (length >= bytes && length <= 2 * bytes && (best < 0 || length < this.buffers[best].byteLength)) best = i;
    });
    if (best < 0) return null;
    const [buffer] = this.buffers.splice(best, 1);
    this.bytes -= buffer.byteLength;
    return buffer;
  }

  /** Drops every buffer kept (the garbage collector frees them). */
  clear(): void {
    this.buffers.length = 0;
    this.bytes = 0;
  }
}
