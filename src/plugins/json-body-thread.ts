/**
 * A thread for one large JSON body (see json-body.ts): it receives the body's chunks as they arrive,
 * and once told to, parses, validates and compacts it, answers, and ends (its heap, hundreds of MiB
 * for a 32 MiB body of nested arrays, goes with it). The answer's typed arrays are moved to the main
 * thread, not copied.
 */
import { parentPort, workerData } from 'node:worker_threads';
import secureJson from 'secure-json-parse';
import type { BodyDecoderName } from './body-decoders.js';

export type ThreadMessage = Uint8Array | 'parse';
export type ThreadAnswer = { value: unknown } | { issues: { path: string; message: string }[] } | { invalidJson: string } | { tooHeavy: number };

// Loaded while the body arrives; the decoders bring the schemas (and the rules they name).
const modules = Promise.all([import('./body-decoders.js'), import('../compute/index.js')]);
modules.catch(() => undefined); // a failure is reported when the body is parsed
const chunks: Uint8Array[] = [];

parentPort!.on('message', (message: ThreadMessage) => {
  if (message !== 'parse') chunks.push(message);
  else void answer().then(({ answer, transfer }) => parentPort!.postMessage(answer, transfer));
});

async function answer(): Promise<{ answer: ThreadAnswer; transfer: ArrayBuffer[] }> {
  const [{ BODY_DECODERS }, { SpecError }] = await modules;
  const bytes = Buffer.concat(chunks);
  chunks.length = 0;
  // Refused before parsing: a thread that reaches its heap limit is not always ended alone (V8 may abort
  // the whole process with "Reached heap limit"), so the limit must never be reached.
  const estimate = parseHeapEstimate(bytes);
  if (estimate > workerData.heapMb * 2 ** 20) return { answer: { tooHeavy: estimate }, transfer: [] };
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (error) {
    return { answer: { invalidJson: (error as Error).message }, transfer: [] };
  }
  const decoder = BODY_DECODERS[workerData.decoder as BodyDecoderName];
  let value: unknown;
  try {
    value = decoder.decode(json);
  } catch (error) {
    if (error instanceof SpecError) return { answer: { issues: error.issues }, transfer: [] };
    throw error;
  }
  json = undefined;
  return { answer: { value }, transfer: [...buffersOf(value, new Set())] };
}

/**
 * An upper bound of the heap that parsing and decoding a JSON body takes, from its bytes alone: the
 * text as a string, each array or object (about 64 bytes, as V8 lays out JSON.parse's), each further
 * element (at most 16: a boxed number in a mixed array), three times over for the decoder's copies
 * and the collector's room. Brackets and commas inside strings only raise it.
 */
export function parseHeapEstimate(bytes: Uint8Array): number {
  let containers = 0;
  let elements = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === 0x2c) elements++;
    else if (c === 0x5b || c === 0x7b) containers++;
  }
  return 3 * (bytes.length + 64 * containers + 16 * elements);
}

/** The buffers of every typed array in `value` (a compact body: plain objects, arrays, typed arrays). */
function buffersOf(value: unknown, found: Set<ArrayBuffer>): Set<ArrayBuffer> {
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) found.add(value.buffer);
  } else if (typeof value === 'object' && value !== null) {
    for (const item of Array.isArray(value) ? value : Object.values(value)) if (typeof item === 'object') buffersOf(item, found);
  }
  return found;
}
