import type { LayerType } from '../../spec.js';
import { add } from './add.js';
import { concatenate } from './concatenate.js';
import { dense } from './dense.js';
import { activation, dropout } from './dropout.js';
import { flatten } from './flatten.js';
import type { LayerDefinition } from './layer.js';
import { LayerError } from './layer.js';
import { reshape } from './reshape.js';

/** Every layer the graph engine knows; adding one is adding its file and a line here. */
const LAYERS: { [T in LayerType]?: LayerDefinition<T> } = {
  dense,
  flatten,
  reshape,
  dropout,
  activation,
  add,
  concatenate,
};

export function layerDefinition<T extends LayerType>(type: T): LayerDefinition<T> {
  const definition = LAYERS[type];
  if (!definition) throw new LayerError(`the graph engine has no '${type}' layer (it has ${Object.keys(LAYERS).join(', ')})`);
  return definition as LayerDefinition<T>;
}
