/**
 * The graph engine: exact loss, gradient, Hessian-vector products and Hessian rows for any GraphModel
 * (src/compute/spec.ts), layer by layer from a registry of layers (./layers).
 */
export { PreparedGraph } from './prepared.js';
export { graphStructure, type GraphParameter, type GraphStructure } from './structure.js';
export { graphCost } from './cost.js';
export { diagonalPlan, type DiagonalMethod, type DiagonalPlan } from './diagonal.js';
