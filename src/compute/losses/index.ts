import { binaryCrossentropy } from './binaryCrossentropy.js';
import { categoricalCrossentropy } from './categoricalCrossentropy.js';
import { huber } from './huber.js';
import { meanAbsoluteError } from './meanAbsoluteError.js';
import { meanSquaredError } from './meanSquaredError.js';
import { registry } from '../registry.js';
import type { LossRule } from './rule.js';
import { sparseCategoricalCrossentropy } from './sparseCategoricalCrossentropy.js';

/** Every loss the engine knows; adding one is adding its file and a line here. */
export const LOSSES: readonly LossRule[] = [
  meanSquaredError, meanAbsoluteError, huber, categoricalCrossentropy, sparseCategoricalCrossentropy, binaryCrossentropy,
];

const rules = registry('loss', LOSSES);

/** Canonical names and aliases, for validation and the API documentation. */
export const LOSS_NAMES = rules.names;

export const lossRule = (name: string): LossRule => rules.get(name);
