import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { errorCodes, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { SpecError } from '../compute/errors.js';
import { ApiError } from '../routes/errors.js';
import { decoderNameFor, DecodedBody, type BodyDecoderName } from './body-decoders.js';
import type { ThreadAnswer, ThreadMessage } from './json-body-thread.js';

export interface JsonBodyOptions {
  /** Bodies at least this large (decompressed), for routes in BODY_DECODERS, go to a body thread (BODY_THREAD_BYTES). */
  offThreadBytes: number;
  /** Old-generation heap of one body thread; a body that needs more is a 413 (BODY_THREAD_HEAP_MB). */
  threadHeapMb: number;
  /** Body threads alive at once (each receiving one body); a further large body waits, unread. */
  maxThreads?: number;
  /** Told the number of body threads alive whenever it changes (the /metrics gauge). */
  onThreads?: (alive: number) => void;
}

/**
 * Threads alive at once: each holds its body's bytes and its loaded modules (some 80 MiB); only one
 * parses at a time (a parse takes a few hundred MiB).
 */
const MAX_BODY_THREADS = 4;

/** The compiled thread, beside this file in dist/, or in dist/ when this module runs from source (tests). */
function threadFile(): string {
  const beside = new URL('./json-body-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return fileURLToPath(beside);
  return fileURLToPath(new URL('../../dist/plugins/json-body-thread.js', import.meta.url));
}

/** A first-come, first-served count of slots. */
class Slots {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async take(): Promise<void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** The payload stream as fastify and @fastify/compress give it (the decompressor counts what it read). */
type Payload = Readable & { receivedEncodedLength?: number };

/**
 * application/json bodies, read as fastify's own parser reads them (same limits, same errors: 413 past
 * the route's body limit, counted decompressed and compressed; 400 for a Content-Length that does not
 * match; invalid JSON; prototype poisoning refused), with one difference: a large body for a route in
 * BODY_DECODERS is not joined, parsed nor validated on the main thread. Its chunks go, as they arrive,
 * to a thread of its own, which answers with the compact body (typed arrays, moved), so that the event
 * loop (and /health) keeps answering while a 32 MiB body is handled. Bodies are parsed one at a time
 * (a parse takes a few hundred MiB); the threads are this plugin's and end with it.
 */
export const jsonBodyPlugin = (options: JsonBodyOptions): FastifyPluginAsync =>
  fastifyPlugin(async (app) => {
    const defaultParser = app.getDefaultJsonParser('error', 'error');
    const threadSlots = new Slots(options.maxThreads ?? MAX_BODY_THREADS);
    const parseSlot = new Slots(1);
    const threads = new Set<Worker>();
    let closing = false;

    /** Starts a body's thread; `finish` asks for its answer once every chunk was sent; `end` stops it. */
    function startThread(decoder: BodyDecoderName) {
      const worker = new Worker(threadFile(), {
        workerData: { decoder, heapMb: options.threadHeapMb },
        resourceLimits: { maxOldGenerationSizeMb: options.threadHeapMb },
      });
      threads.add(worker);
      options.onThreads?.(threads.size);
      const stopped = new Promise<Error>((resolve) => {
        worker.once('error', resolve);
        worker.once('exit', (code) => resolve(new Error(`the body thread ended (exit code ${code})`)));
      });
      const end = () => {
        if (threads.delete(worker)) {
          void worker.terminate();
          threadSlots.give();
          options.onThreads?.(threads.size);
        }
      };
      return {
        // Copied into the message (no allocation the main thread's garbage collector counts), not moved: a
        // chunk may be a view of a buffer other chunks share (the decompressor's output).
        send: (chunk: Uint8Array) => worker.postMessage(chunk satisfies ThreadMessage),
        end,
        finish: async (): Promise<ThreadAnswer> => {
          await parseSlot.take();
          try {
            if (!closing) worker.postMessage('parse' satisfies ThreadMessage);
            const answered = new Promise<ThreadAnswer>((resolve) => worker.once('message', resolve));
            const result = closing ? new Error('closing') : await Promise.race([answered, stopped]);
            if (closing) throw new ApiError('shutting_down', 'the server is shutting down; the request body was not read');
            if (result instanceof Error) throw threadFailure(result, options.threadHeapMb);
            return result;
          } finally {
            parseSlot.give();
            end();
          }
        },
      };
    }

    app.removeContentTypeParser('application/json');
    app.addContentTypeParser('application/json', (request: FastifyRequest, payload: Payload, done: (error: Error | null, body?: unknown) => void) => {
      const limit = request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit!;
      const contentLength = Number(request.headers['content-length']);
      if (contentLength > limit) return done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      const decoder = decoderNameFor(request.routeOptions.schema?.body);
      let received = 0;
      let chunks: Buffer[] = [];
      let thread: ReturnType<typeof startThread> | null = null;
      let waitingForThread = false;
      let ended = false;
      let settled = false;

      const settle = (error: Error | null, body?: unknown) => {
        if (settled) return;
        settled = true;
        payload.off('data', onData).off('end', onEnd).off('error', onEnd).off('close', onClose);
        if (error) thread?.end();
        done(error, body);
      };
      /** Past the threshold: the chunks so far go to a thread (once one is free; meanwhile nothing is read). */
      const goOffThread = () => {
        waitingForThread = true;
        payload.pause();
        void threadSlots.take().then(() => {
          waitingForThread = false;
          if (settled || closing) return threadSlots.give();
          thread = startThread(decoder!);
          for (const chunk of chunks) thread.send(chunk);
          chunks = [];
          if (ended) void answer();
          else payload.resume();
        });
      };
      const answer = async () => {
        try {
          settle(null, bodyOf(await thread!.finish(), decoder!, options.threadHeapMb));
        } catch (error) {
          settle(error as Error);
        }
      };
      function onData(chunk: Buffer | string) {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        received += bytes.length;
        if (received > limit || (payload.receivedEncodedLength ?? 0) > limit) return settle(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
        if (thread) return thread.send(bytes);
        chunks.push(bytes);
        const large = received >= options.offThreadBytes || contentLength >= options.offThreadBytes;
        if (decoder && large && !waitingForThread) goOffThread();
      }
      function onEnd(error?: Error & { statusCode?: number }) {
        if (error) {
          if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
          return settle(error);
        }
        if (!Number.isNaN(contentLength) && (payload.receivedEncodedLength || received) !== contentLength) {
          return settle(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
        }
        ended = true;
        if (thread) return void answer();
        if (waitingForThread) return; // answered once a thread is free
        defaultParser(request, Buffer.concat(chunks, received).toString('utf8'), settle);
      }
      /** The client went away mid-body: its thread (if any) stops; fastify answers no one. */
      function onClose() {
        if (!ended) settle(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      }
      payload.on('data', onData).on('end', onEnd).on('error', onEnd).on('close', onClose);
      payload.resume();
    });

    app.addHook('onClose', async () => {
      closing = true;
      await Promise.all([...threads].map((worker) => worker.terminate()));
    });
  });

/** The thread's answer as the route's body (a DecodedBody) or as the error fastify answers. */
function bodyOf(answer: ThreadAnswer, decoder: BodyDecoderName, heapMb: number): DecodedBody {
  if ('invalidJson' in answer) throw new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY();
  if ('tooHeavy' in answer) throw tooHeavy(heapMb, `would take about ${Math.ceil(answer.tooHeavy / 2 ** 20)} MiB, more than`);
  if ('issues' in answer) return new DecodedBody(decoder, undefined, new SpecError(answer.issues));
  return new DecodedBody(decoder, answer.value);
}

/** A thread that ran out of its heap is the body's fault (413); anything else is ours. */
function threadFailure(error: Error & { code?: string }, heapMb: number): Error {
  if (error.code === 'ERR_WORKER_OUT_OF_MEMORY') return tooHeavy(heapMb, 'took more than');
  return new Error(`the body thread failed: ${error.message}`);
}

const tooHeavy = (heapMb: number, how: string) =>
  new ApiError('payload_too_large', `parsing and validating the request body ${how} the body thread's ${heapMb} MiB (BODY_THREAD_HEAP_MB); send large tensors as binary tensors {"dtype","shape","data"}`);
