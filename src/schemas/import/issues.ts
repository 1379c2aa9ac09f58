import type { z } from 'zod';
import { formatPath, SpecError, specError, type FieldIssue } from '../../compute/index.js';

/** A field path: "model.layers[2]" and its keys, as the error details show it. */
export type Path = string;

/** `path` extended by keys: at("model.layers", 2, "padding") is "model.layers[2].padding". */
export const at = (path: Path, ...keys: (string | number)[]): Path => formatPath([path, ...keys]);

/**
 * The problems found in one request, each tied to its field; thrown together as one SpecError, so that
 * a client sees every bad field at once (one message per problem).
 */
export class Issues {
  readonly list: FieldIssue[] = [];

  /** Records a problem; the message names its field first, as the zod checks' messages do. */
  add(path: Path, message: string): void {
    this.list.push({ path, message: message.startsWith(path) ? message : path ? `${path}: ${message}` : message });
  }

  /** Records a zod failure of the value at `path`. */
  addZod(path: Path, error: z.ZodError): void {
    const prefix = path ? [path] : [];
    this.list.push(...specError({ issues: error.issues.map((i) => ({ ...i, path: [...prefix, ...i.path] })) } as z.ZodError).issues);
  }

  get count(): number {
    return this.list.length;
  }

  throwIfAny(): void {
    if (this.list.length) throw new SpecError(this.list);
  }
}

/** A plain JSON object (not an array, not null). */
export const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
