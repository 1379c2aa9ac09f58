/**
 * The seed case: a 2x2 linear layer without bias under mean squared error. Its Hessian is 4x4:
 * (2 / (B * units)) * kron(X^T X, I_2), the cross terms between the kernel's entries included.
 */
export const EXAMPLE_REQUEST = {
  model: {
    inputShape: [2],
    layers: [{ type: 'dense', units: 2, activation: 'linear', useBias: false, kernel: [[1, 2], [3, 4]] }],
  },
  loss: 'meanSquaredError',
  data: { x: [[1, 2], [3, -1], [0.5, 0.5]], y: [[1, 0], [0, 1], [1, 1]] },
} as const;

/** What EXAMPLE_REQUEST answers: computed inline (plain JavaScript float64, rounded to float32; see compute/inline). */
export const EXAMPLE_RESPONSE = {
  parameters: [{ name: 'dense_1/kernel', shape: [2, 2], offset: 0, size: 4 }],
  size: 4,
  loss: 23.666666,
  gradient: [2.1666668, 4.6666665, 4.1666665, 6.6666665],
  hessian: [
    [3.4166668, 0, -0.25, 0],
    [0, 3.4166668, 0, -0.25],
    [-0.25, 0, 1.75, 0],
    [0, -0.25, 0, 1.75],
  ],
  meta: { backend: 'js' as const, dtype: 'float32' as const, elapsedMs: 0.05, method: 'rOperator' as const },
};

/**
 * One request per loss family, shown in the OpenAPI document as named examples of the request body
 * (each is also sent to the service by the API tests).
 */
export const REQUEST_EXAMPLES = {
  seed: { summary: 'Regression, mean squared error: the 2x2 seed case (4x4 Hessian)', value: EXAMPLE_REQUEST },
  huber: {
    summary: 'Robust regression: huber loss with delta, a tanh hidden layer, kernels drawn from the seed',
    value: {
      model: { inputShape: [2], seed: 1, layers: [{ type: 'dense', units: 3, activation: 'tanh' }, { type: 'dense', units: 1 }] },
      loss: { type: 'huber', delta: 0.5 },
      data: { x: [[0.5, -1], [1, 2], [-0.3, 0.8]], y: [[0.2], [1.5], [-0.4]] },
    },
  },
  categorical: {
    summary: 'Classification, one-hot targets: categorical cross-entropy from logits, only the output layer (wrt)',
    value: {
      model: { inputShape: [3], seed: 2, layers: [{ type: 'dense', units: 4, activation: 'relu' }, { type: 'dense', units: 3 }] },
      loss: { type: 'categoricalCrossentropy', fromLogits: true },
      data: { x: [[1, 0, -1], [0.5, 0.5, 0.5], [-1, 2, 0]], y: [[1, 0, 0], [0, 1, 0], [0, 0, 1]] },
      wrt: ['dense_2/kernel', 'dense_2/bias'],
    },
  },
  sparse: {
    summary: 'Classification, integer labels: sparse categorical cross-entropy on a softmax output',
    value: {
      model: { inputShape: [2], seed: 3, layers: [{ type: 'dense', units: 3, activation: 'softmax' }] },
      loss: 'sparseCategoricalCrossentropy',
      data: { x: [[1, 2], [-1, 0.5], [0, -2]], y: [0, 2, 1] },
    },
  },
  binary: {
    summary: 'Binary classification: binary cross-entropy on a sigmoid output, an L2 kernel regularizer',
    value: {
      model: { inputShape: [2], seed: 4, layers: [{ type: 'dense', units: 1, activation: 'sigmoid', kernelRegularizer: { l2: 0.01 } }] },
      loss: 'binaryCrossentropy',
      data: { x: [[1, 2], [-1, 0.5], [0.3, -2]], y: [[1], [0], [1]] },
    },
  },
};

/** POST /v1/jobs's named examples: every Hessian request above, and a curvature job. */
export const JOB_EXAMPLES = {
  ...REQUEST_EXAMPLES,
  eigenvalues: {
    summary: "A curvature job: the 2 largest eigenvalues of the seed case's Hessian (both 3.4533589: H = A ⊗ I₂)",
    value: { ...EXAMPLE_REQUEST, quantity: 'eigenvalues', k: 2 },
  },
};
