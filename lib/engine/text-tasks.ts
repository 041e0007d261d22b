import { LlamaError } from '../errors';
import type { NativeInfill, NativeVocabulary } from '../native/binding-types';
import { optionalBool, optionalInt, optionalSignal, requireObject, requireString } from '../validate';
import { rejectUnknownKeys } from './request';

// Requests whose prompt is built from parts with the model's special tokens, as llama-server builds them
// (binding/core/prompt_format.h): reranking (query, document) pairs and infill (fill in the middle); and the
// vocabulary facts they depend on. Validation and result shaping here, shared by LlamaModel and the backends.

export interface RerankOptions {
  /** Keep only the best `topN` documents. Default: all of them. */
  topN?: number;
  /**
   * Map each score through the logistic function into (0, 1), as Text Embeddings Inference and sentence-transformers
   * cross-encoders do. Default false: the model's raw score (llama-server's `/v1/rerank` `relevance_score`).
   */
  normalize?: boolean;
  /** Rejects the call with ERR_ABORTED. */
  signal?: AbortSignal;
}

/** One ranked document. Results come best first. */
export interface RerankResult {
  /** Position of the document in the `documents` given. */
  index: number;
  /** Relevance to the query: the classifier's output (higher is more relevant), or its logistic with `normalize`. */
  score: number;
  document: string;
}

/** What fills the middle: the code before and after the gap, and other files of the project for context. */
export interface InfillInput {
  /** Text before the gap. */
  prefix: string;
  /** Text after the gap. */
  suffix: string;
  /** Text the middle must start with (put after the prefix, llama-server's `prompt`). Default ''. */
  prompt?: string;
  /** Other files, put before the prefix under their names (llama-server's `input_extra`). Default none. */
  extra?: { filename?: string; text: string }[];
}

/** llama.cpp's tokenizer families (llama_vocab_type). */
export type TokenizerType = 'none' | 'spm' | 'bpe' | 'wpm' | 'ugm' | 'rwkv' | 'plamo2';

/** The vocabulary's special tokens (null: the model has none) and what tokenizing with `addSpecial` adds. */
export interface VocabularyInfo {
  type: TokenizerType;
  /** Number of tokens. */
  size: number;
  bos: number | null;
  eos: number | null;
  /** End of turn. */
  eot: number | null;
  sep: number | null;
  /** Newline. */
  nl: number | null;
  pad: number | null;
  mask: number | null;
  /** Fill-in-the-middle: prefix, suffix, middle, padding, repository and file separator tokens. */
  fimPre: number | null;
  fimSuf: number | null;
  fimMid: number | null;
  fimPad: number | null;
  fimRep: number | null;
  fimSep: number | null;
  addBos: boolean;
  addEos: boolean;
  addSep: boolean;
  /** The prefix, suffix and middle tokens {@link LlamaModel.infill} needs are all there. */
  hasFim: boolean;
}

/** One token and its piece of text (special tokens rendered), as llama-server's `/tokenize` `with_pieces`. */
export interface TokenPiece {
  id: number;
  /** The piece's bytes, which may be part of a UTF-8 character. */
  bytes: Uint8Array;
  /** The piece as text, or null when its bytes are not valid UTF-8 on their own (then see `bytes`). */
  text: string | null;
}

const TOKENIZER_TYPES: TokenizerType[] = ['none', 'spm', 'bpe', 'wpm', 'ugm', 'rwkv', 'plamo2'];

export function vocabularyInfo(v: NativeVocabulary): VocabularyInfo {
  const id = (t: number) => (t < 0 ? null : t);
  return {
    type: TOKENIZER_TYPES[v.type] ?? 'none',
    size: v.size,
    bos: id(v.bos),
    eos: id(v.eos),
    eot: id(v.eot),
    sep: id(v.sep),
    nl: id(v.nl),
    pad: id(v.pad),
    mask: id(v.mask),
    fimPre: id(v.fimPre),
    fimSuf: id(v.fimSuf),
    fimMid: id(v.fimMid),
    fimPad: id(v.fimPad),
    fimRep: id(v.fimRep),
    fimSep: id(v.fimSep),
    addBos: v.addBos,
    addEos: v.addEos,
    addSep: v.addSep,
    hasFim: v.fimPre >= 0 && v.fimSuf >= 0 && v.fimMid >= 0,
  };
}

/** The error of infill on a model without FIM tokens, in llama-server's words. */
export function checkFim(v: VocabularyInfo): void {
  const missing = [
    ...(v.fimPre === null ? ['prefix'] : []),
    ...(v.fimSuf === null ? ['suffix'] : []),
    ...(v.fimMid === null ? ['middle'] : []),
  ];
  if (missing.length > 0) {
    throw new LlamaError('ERR_MODEL_UNSUPPORTED', `infill needs the model's fill-in-the-middle tokens: its vocabulary has no ${missing.join(', ')} token`);
  }
}

const fatal = new TextDecoder('utf-8', { fatal: true });

export function tokenPiece(id: number, bytes: Uint8Array): TokenPiece {
  let text: string | null;
  try {
    text = fatal.decode(bytes);
  } catch {
    text = null;
  }
  return { id, bytes, text };
}

export interface ResolvedRerank {
  query: string;
  documents: string[];
  topN: number;
  normalize: boolean;
  signal: AbortSignal | undefined;
}

export const RERANK_KEYS = ['topN', 'normalize', 'signal'] as const;

export function resolveRerank(query: unknown, documents: unknown, options: unknown, where: string): ResolvedRerank {
  requireString(query, 'query');
  if (!Array.isArray(documents)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'documents must be an array of strings');
  documents.forEach((d, i) => requireString(d, `documents[${i}]`));
  const opts = requireObject(options, 'options');
  rejectUnknownKeys(opts, RERANK_KEYS, where);
  return {
    query: query as string,
    documents: documents as string[],
    topN: optionalInt(opts.topN, 'topN', 0, 2 ** 31 - 1) ?? documents.length,
    normalize: optionalBool(opts.normalize, 'normalize') ?? false,
    signal: optionalSignal(opts.signal),
  };
}

/** Scores (one per document, in order) to results: best first (ties in document order), `topN`, `normalize`. */
export function rankResults(request: ResolvedRerank, scores: ArrayLike<number>): RerankResult[] {
  const results = request.documents.map((document, index) => ({
    index,
    score: request.normalize ? 1 / (1 + Math.exp(-scores[index]!)) : scores[index]!,
    document,
  }));
  results.sort((a, b) => b.score - a.score);
  return results.slice(0, request.topN);
}

export function resolveInfill(input: unknown): NativeInfill {
  const i = requireObject(input, 'input');
  rejectUnknownKeys(i, ['prefix', 'suffix', 'prompt', 'extra'], 'infill() input');
  const extra = i.extra === undefined ? [] : i.extra;
  if (!Array.isArray(extra)) throw new LlamaError('ERR_INVALID_ARGUMENT', 'extra must be an array of { filename, text }');
  return {
    prefix: requireString(i.prefix, 'prefix'),
    suffix: requireString(i.suffix, 'suffix'),
    prompt: i.prompt === undefined ? '' : requireString(i.prompt, 'prompt'),
    extra: extra.map((chunk: unknown, k) => {
      const c = requireObject(chunk, `extra[${k}]`);
      rejectUnknownKeys(c, ['filename', 'text'], `extra[${k}]`);
      // llama-server's default file name.
      return { filename: c.filename === undefined ? 'tmp' : requireString(c.filename, `extra[${k}].filename`), text: requireString(c.text, `extra[${k}].text`) };
    }),
  };
}
