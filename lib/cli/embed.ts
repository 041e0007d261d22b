import { GLOBAL_HELP, GLOBAL_OPTIONS, MODEL_HELP, MODEL_OPTIONS, parse } from './args';
import { openBackend } from './backend';
import { EXIT, readStdin, UsageError, writeOut } from './output';

export const EMBED_HELP = `Usage: tea-llama embed [options] TEXT...

Embeds each TEXT argument (or, without any, each non-empty line of stdin) and prints one vector per line, as a
JSON array of numbers, in the order of the texts. Vectors have unit length.

${MODEL_HELP}

${GLOBAL_HELP}`;

const OPTIONS = { ...MODEL_OPTIONS, ...GLOBAL_OPTIONS } as const;

export async function embedCommand(args: string[]): Promise<number> {
  const { values: v, positionals } = parse('embed', args, OPTIONS);
  if (v.help) {
    await writeOut(EMBED_HELP + '\n');
    return EXIT.ok;
  }
  let texts = positionals;
  if (texts.length === 0 || (texts.length === 1 && texts[0] === '-')) {
    if (process.stdin.isTTY) throw new UsageError('give one or more texts, or pipe them into stdin, one per line', 'embed');
    texts = (await readStdin()).split(/\r?\n/).filter((line) => line.trim().length > 0);
    if (texts.length === 0) throw new UsageError('stdin holds no text to embed', 'embed');
  }
  const backend = await openBackend('embed', v);
  try {
    const vectors = await backend.embed(texts);
    await writeOut(vectors.map((vector) => JSON.stringify(Array.from(vector))).join('\n') + '\n');
    return EXIT.ok;
  } finally {
    await backend.dispose();
  }
}
