import { categoricalCrossentropy } from './categoricalCrossentropy.js';
import type { LossRule } from './rule.js';

/** Categorical cross-entropy with integer class labels; the labels arrive one-hot encoded (see model.ts). */
export const sparseCategoricalCrossentropy: LossRule = {
  ...categoricalCrossentropy,
  name: 'sparseCategoricalCrossentropy',
  aliases: ['sparse_categorical_crossentropy'],
  targets: 'labels',
};
