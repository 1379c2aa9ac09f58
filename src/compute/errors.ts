/** A problem with the request, tied to the field it is in (e.g. "model.layers[1].kernel"). */
export interface FieldIssue {
  path: string;
  message: string;
}

/** The request cannot be computed as given: shapes that do not chain, unknown names, bad targets. */
export class SpecError extends Error {
  constructor(readonly issues: FieldIssue[]) {
    super(issues.map((i) => i.message).join('; '));
    this.name = 'SpecError';
  }
}

/** The model evaluates to a non-finite loss, gradient or Hessian on this data (e.g. log of 0). */
export class NumericalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NumericalError';
  }
}
