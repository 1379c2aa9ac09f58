import { tf, type Tensor } from '../../tf.js';
import { sameShapes } from './add.js';
import { directionCount, plus, type LayerDefinition, type PreparedLayer } from './layer.js';

/**
 * y = x_1 ⊙ ... ⊙ x_n, bilinear in each pair of inputs: dy/dx_i = Π_{j≠i} x_j, and the only second-order
 * terms are the cross ones, d²y/dx_i dx_j = Π_{l≠i,j} x_l. No weights.
 */
export const multiply: LayerDefinition<'multiply'> = {
  type: 'multiply',
  shapes(_node, inputs) {
    sameShapes(inputs, 'multiply');
    return { output: inputs[0], weights: {} };
  },
  prepare(_node, inputs, _weights, { keep }): PreparedLayer {
    /** Π of the inputs whose index is not in `skip` (1 when none is left). */
    const productWithout = (...skip: number[]): Tensor | null => {
      const factors = inputs.filter((_, i) => !skip.includes(i));
      return factors.length ? factors.reduce((a, b) => tf.mul(a, b)) : null;
    };
    const others = inputs.map((_, i) => keep(productWithout(i)!));
    const output = keep(productWithout()!);
    let g: Tensor | null = null;
    return {
      output,
      backward(gradient) {
        g = keep(gradient);
        return { inputs: others.map((o) => tf.mul(gradient, o)), weights: {} };
      },
      rForward(rInputs) {
        if (!directionCount(rInputs)) return { output: null };
        return { output: rInputs.reduce<Tensor | null>((sum, r, i) => (r ? plus(sum, tf.mul(r, others[i])) : sum), null) };
      },
      rBackward(rg, _forward, rInputs, _v, wanted) {
        if (!wanted.inputs) return { inputs: inputs.map(() => null), weights: {} };
        const result = inputs.map((_, i) => {
          let term = rg ? tf.mul(rg, others[i]) : null;
          rInputs.forEach((r, j) => {
            if (!r || j === i) return;
            const rest = productWithout(i, j);
            term = plus(term, tf.mul(tf.mul(r, g!), rest ?? 1));
          });
          return term;
        });
        return { inputs: result, weights: {} };
      },
    };
  },
};
