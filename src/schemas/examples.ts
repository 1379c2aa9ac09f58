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
