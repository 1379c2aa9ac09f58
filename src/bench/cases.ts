/** The benchmark's models: tanh MLPs, linear last layer, softmax cross-entropy from logits, fixed weights and data. */
import { glorotUniform } from '../compute/initializers.js';
import { costShape, DEFAULT_MEMORY_BUDGET_BYTES, planHessian } from '../compute/index.js';
import { compactRequest, HessianRequest, type ValidatedRequest } from '../schemas/model.js';

/** Layer sizes by P. */
export const CASES: Record<number, number[]> = {
  1507: [10, 32, 32, 3],
  6154: [20, 64, 64, 10],
  11878: [25, 92, 92, 10],
  19158: [40, 128, 100, 10],
};
export const BATCH = 256;

/** The benchmarks' model in our JSON: tanh dense layers with a linear last layer, the given weights. */
export const tanhMlp = (sizes: number[], kernels: number[][][], biases: number[][]) => ({
  inputShape: [sizes[0]],
  layers: sizes.slice(1).map((units, l) => ({
    type: 'dense',
    units,
    activation: l === sizes.length - 2 ? 'linear' : 'tanh',
    kernel: kernels[l],
    bias: biases[l],
  })),
});

/** Validated, in its JSON form (sent over HTTP and to the peers); compactRequest() makes the engine's form. */
export function mlpRequest(sizes: number[], batch: number): ValidatedRequest {
  let state = 12345;
  const random = () => ((state = (state * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const classes = sizes[sizes.length - 1];
  return HessianRequest.parse({
    model: tanhMlp(
      sizes,
      sizes.slice(1).map((units, l) => glorotUniform(sizes[l], units, 1, l)),
      sizes.slice(1).map((units) => Array.from({ length: units }, () => 0.1 * random())),
    ),
    loss: { type: 'categoricalCrossentropy', fromLogits: true },
    data: {
      x: Array.from({ length: batch }, () => Array.from({ length: sizes[0] }, random)),
      y: Array.from({ length: batch }, (_, b) => Array.from({ length: classes }, (_, c) => (c === b % classes ? 1 : 0))),
    },
  });
}

/** FLOPs of the B·P² multiply-adds model of a full Hessian (the same yardstick for every implementation). */
export const modelFlops = (size: number, batch: number) => 2 * batch * size * size;

/** FLOPs the service's planned path executes (cost model of planHessian: the upper blocks, factors, preparation). */
export const executedFlops = (request: ValidatedRequest, budgetBytes = DEFAULT_MEMORY_BUDGET_BYTES) => {
  const plan = planHessian(costShape(compactRequest(request)), budgetBytes);
  return { flops: plan.flops, method: plan.method };
};
