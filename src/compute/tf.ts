// The one place the engine imports TF.js from, so every file shares the same engine instance
// (backends register themselves on it; see backend.ts).
export * as tf from '@tensorflow/tfjs-core';
export type { Tensor, Tensor1D, Tensor2D, Tensor3D } from '@tensorflow/tfjs-core';
