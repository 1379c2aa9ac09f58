import { SpecError, type FieldIssue } from '../src/compute/errors.js';

/** The issues of the SpecError that `run` throws (fails the test if it throws nothing or something else). */
export function issuesOf(run: () => unknown): FieldIssue[] {
  try {
    run();
  } catch (error) {
    if (error instanceof SpecError) return error.issues;
    throw error;
  }
  throw new Error('expected a SpecError');
}
