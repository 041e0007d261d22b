import { expect } from 'vitest';

import { LlamaError } from '../../lib';

/** The typed error `promise` rejects with; fails the test if it resolves or rejects with anything else. */
export async function failure(promise: Promise<unknown>): Promise<LlamaError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LlamaError);
    return error as LlamaError;
  }
  throw new Error('expected a rejection');
}
