import type { LayerType } from '../../spec.js';
import { add } from './add.js';
import { averagePooling2d } from './averagePooling2d.js';
import { batchNormalization } from './batchNormalization.js';
import { concatenate } from './concatenate.js';
import { conv2d } from './conv2d.js';
import { dense } from './dense.js';
import { activation, dropout } from './dropout.js';
import { embedding } from './embedding.js';
import { flatten } from './flatten.js';
import { globalAveragePooling2d, globalMaxPooling2d } from './globalPooling2d.js';
import type { LayerDefinition } from './layer.js';
import { maxPooling2d } from './maxPooling2d.js';
import { multiply } from './multiply.js';
import { reshape } from './reshape.js';

/** Every layer the graph engine knows (one per LayerType of spec.ts); adding one is adding its file and a line here. */
const LAYERS: { [T in LayerType]: LayerDefinition<T> } = {
  dense,
  conv2d,
  maxPooling2d,
  averagePooling2d,
  globalAveragePooling2d,
  globalMaxPooling2d,
  flatten,
  reshape,
  dropout,
  activation,
  batchNormalization,
  embedding,
  add,
  multiply,
  concatenate,
};

export const layerDefinition = <T extends LayerType>(type: T): LayerDefinition<T> => LAYERS[type] as LayerDefinition<T>;
