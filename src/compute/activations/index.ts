import { elu } from './elu.js';
import { gelu } from './gelu.js';
import { geluApproximate } from './geluApproximate.js';
import { hardSigmoid } from './hardSigmoid.js';
import { leakyRelu } from './leakyRelu.js';
import { linear } from './linear.js';
import { relu } from './relu.js';
import { registry } from '../registry.js';
import type { ActivationRule } from './rule.js';
import { selu } from './selu.js';
import { sigmoid } from './sigmoid.js';
import { softmax } from './softmax.js';
import { softplus } from './softplus.js';
import { softsign } from './softsign.js';
import { swish } from './swish.js';
import { tanh } from './tanh.js';

/** Every activation the engine knows; adding one is adding its file and a line here. */
export const ACTIVATIONS: readonly ActivationRule[] = [
  linear, relu, leakyRelu, elu, selu, tanh, sigmoid, hardSigmoid, softplus, softsign, swish, gelu, geluApproximate, softmax,
];

const rules = registry('activation', ACTIVATIONS);

/** Canonical names and aliases, for validation and the API documentation. */
export const ACTIVATION_NAMES = rules.names;

export const activationRule = (name: string): ActivationRule => rules.get(name);
