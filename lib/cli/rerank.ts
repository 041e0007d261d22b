import { GLOBAL_HELP, GLOBAL_OPTIONS, MODEL_HELP, MODEL_OPTIONS, parse } from './args';
import { openBackend } from './backend';
import { EXIT, readStdin, UsageError, writeOut } from './output';

export const RERANK_HELP = `Usage: tea-llama rerank [options] QUERY DOCUMENT...

Scores each DOCUMENT (or, without any, each non-empty line of stdin) against QUERY with a reranking model (a
classifier head, such as bge-reranker; --backend api: a server's /v1/rerank) and prints one line per document, best
first, as JSON: {"index":…,"score":…,"document":…}.

Rerank options:
      --top-n N          print only the best N
      --normalize        scores through the logistic function, into (0, 1) (default: the model's raw score)

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = { ...MODEL_OPTIONS, ...GLOBAL_OPTIONS, 'top-n': { type: 'string' }, normalize: { type: 'boolean' } } as const;

export async function rerankCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('rerank', args, OPTIONS);
  if (v.help) {
    await writeOut(RERANK_HELP + '\n');
    return EXIT.ok;
  }
  const [query, ...given] = positionals;
  if (query === undefined) throw new UsageError('give a query and one or more documents (or pipe the documents into stdin, one per line)', 'rerank');
  let documents = given;
  if (documents.length === 0 || (documents.length === 1 && documents[0] === '-')) {
    if (process.stdin.isTTY) throw new UsageError('give one or more documents after the query, or pipe them into stdin, one per line', 'rerank');
    documents = (await readStdin()).split(/\r?\n/).filter((line) => line.trim().length > 0);
    if (documents.length === 0) throw new UsageError('stdin holds no document to rerank', 'rerank');
  }
  let topN: number | undefined;
  if (v['top-n'] !== undefined) {
    topN = Number(v['top-n']);
    if (!Number.isInteger(topN) || topN < 0) throw new UsageError(`--top-n must be an integer >= 0 (got ${JSON.stringify(v['top-n'])})`, 'rerank');
  }
  const backend = await openBackend('rerank', v);
  try {
    const ranked = await backend.rerank(query, documents, { ...(topN !== undefined ? { topN } : {}), normalize: v.normalize ?? false });
    await writeOut(ranked.map((r) => JSON.stringify(r)).join('\n') + (ranked.length > 0 ? '\n' : ''));
    return EXIT.ok;
  } finally {
    await backend.dispose();
  }
}
