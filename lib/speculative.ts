import { resolve } from 'node:path';

import { LlamaError } from './errors';
import type { NativeContextOptions } from './native/binding-types';
import type { LoadModelOptions } from './types';
import { optionalBool, optionalInt, optionalNumber, requireString } from './validate';

// Speculative decoding's load options (LoadModelOptions.draftModel and the rest), checked and mapped to the native
// context options of binding/core/speculation.h. One set per model, as llama-server takes them per server.

export const SPECULATIVE_KEYS = ['draftModel', 'draftMax', 'draftMin', 'draftPMin', 'draftNgram', 'draftNgramSize'] as const;

/** llama.cpp's bounds of --spec-ngram-simple-size-n/-m (and a draft length nobody needs more of). */
const MAX_DRAFT = 1024;

export interface SpeculativeChoice {
  /** Absolute path of the draft model, if one. */
  draftPath: string | undefined;
  options: Pick<NativeContextOptions, 'draftMax' | 'draftMin' | 'draftPMin' | 'ngram' | 'ngramSize' | 'ngramMax'>;
}

/** Undefined when the options ask for no speculative decoding; ERR_INVALID_ARGUMENT for options that do nothing. */
export function checkSpeculative(opts: LoadModelOptions, vocabOnly: boolean): SpeculativeChoice | undefined {
  const draftPath = opts.draftModel === undefined ? undefined : resolve(requireString(opts.draftModel, 'draftModel'));
  const ngram = optionalBool(opts.draftNgram, 'draftNgram') ?? false;
  const draftMax = optionalInt(opts.draftMax, 'draftMax', 1, MAX_DRAFT);
  const draftMin = optionalInt(opts.draftMin, 'draftMin', 0, draftMax ?? MAX_DRAFT);
  const draftPMin = optionalNumber(opts.draftPMin, 'draftPMin', 0, 1);
  const ngramSize = optionalInt(opts.draftNgramSize, 'draftNgramSize', 1, MAX_DRAFT);
  // An option that would change nothing is a mistake to report, not to ignore.
  if (!draftPath && (draftMin !== undefined || draftPMin !== undefined)) {
    throw new LlamaError('ERR_INVALID_ARGUMENT', `${draftMin !== undefined ? 'draftMin' : 'draftPMin'} applies to a draft model: pass draftModel too`);
  }
  if (!ngram && ngramSize !== undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', 'draftNgramSize applies to n-gram drafting: pass draftNgram: true too');
  if (!draftPath && !ngram) {
    if (draftMax !== undefined) throw new LlamaError('ERR_INVALID_ARGUMENT', 'draftMax needs draftModel or draftNgram: true');
    return undefined;
  }
  if (vocabOnly) throw new LlamaError('ERR_INVALID_ARGUMENT', 'a vocabOnly model does not generate: no speculative decoding');
  return {
    draftPath,
    options: {
      ...(draftMax !== undefined ? { draftMax, ngramMax: draftMax } : {}),
      ...(draftMin !== undefined ? { draftMin } : {}),
      ...(draftPMin !== undefined ? { draftPMin } : {}),
      ...(ngram ? { ngram, ...(ngramSize !== undefined ? { ngramSize } : {}) } : {}),
    },
  };
}
