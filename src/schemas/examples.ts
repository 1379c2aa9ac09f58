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

/** What EXAMPLE_REQUEST answers (float32, as the wasm backend computes it). */
export const EXAMPLE_RESPONSE = {
  parameters: [{ name: 'dense_1/kernel', shape: [2, 2], offset: 0, size: 4 }],
  size: 4,
  loss: 23.666666,
  gradient: [2.1666667, 4.666667, 4.1666665, 6.666667],
  hessian: [
    [3.4166665, 0, -0.24999997, 0],
    [0, 3.4166665, 0, -0.24999997],
    [-0.24999997, 0, 1.7500001, 0],
    [0, -0.24999997, 0, 1.7500001],
  ],
  meta: { backend: 'wasm' as const, dtype: 'float32' as const, elapsedMs: 12.3, method: 'structured' as const },
};
