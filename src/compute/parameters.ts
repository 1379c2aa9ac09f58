import type { DenseLayerSpec } from './dense/request.js';

/** What the parameter layout depends on: layer sizes and names, not weights (a compact or a parsed model). */
export type ModelLayout = { inputShape: readonly number[]; layers: readonly Pick<DenseLayerSpec, 'units' | 'useBias' | 'name'>[] };

export type TensorKind = 'kernel' | 'bias';

/** One parameter tensor of the model, placed in the flat parameter vector. */
export interface ParameterTensor {
  /** "<layer name>/kernel" or "<layer name>/bias". */
  name: string;
  layer: number;
  kind: TensorKind;
  shape: number[];
  size: number;
  /** Start of this tensor in the flat vector of the result (after any `wrt` selection). */
  offset: number;
}

export const layerName = (model: ModelLayout, index: number): string => model.layers[index].name ?? `dense_${index + 1}`;

/** Inputs of each layer: the model input for the first, the previous layer's units after. */
export const layerInputs = (model: ModelLayout): number[] =>
  model.layers.map((_, i) => (i === 0 ? model.inputShape[0] : model.layers[i - 1].units));

/** All parameter tensors in the flat order: layer by layer, kernel (row-major) then bias. */
export function allParameters(model: ModelLayout): ParameterTensor[] {
  const inputs = layerInputs(model);
  const tensors: ParameterTensor[] = [];
  let offset = 0;
  model.layers.forEach((layer, l) => {
    const name = layerName(model, l);
    const add = (kind: TensorKind, shape: number[]) => {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors.push({ name: `${name}/${kind}`, layer: l, kind, shape, size, offset });
      offset += size;
    };
    add('kernel', [inputs[l], layer.units]);
    if (layer.useBias) add('bias', [layer.units]);
  });
  return tensors;
}

/** The tensors named in `wrt`, in that order, with offsets in the restricted vector; all of them without it. */
export function selectParameters(model: ModelLayout, wrt?: readonly string[]): ParameterTensor[] {
  const all = allParameters(model);
  if (!wrt) return all;
  let offset = 0;
  return wrt.map((name) => {
    const tensor = all.find((t) => t.name === name);
    if (!tensor) throw new Error(`wrt names '${name}', which is not a parameter of the model`);
    const placed = { ...tensor, offset };
    offset += tensor.size;
    return placed;
  });
}

export const totalSize = (tensors: readonly Pick<ParameterTensor, 'size'>[]): number => tensors.reduce((n, t) => n + t.size, 0);
