import type { ActivationRule } from './rule.js';

/** f(z) = z: identity Jacobian, no curvature. */
export const linear: ActivationRule = {
  name: 'linear',
  aliases: [],
  scalar: (z) => [z, 1, 0],
  apply: (z) => ({
    output: z,
    backward: (g) => g,
    jvp: (rz) => rz,
    vjp: (rg) => rg,
    curvature: () => null,
  }),
};
