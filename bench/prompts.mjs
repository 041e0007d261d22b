// Benchmark inputs: prompts of an exact token count, different for every run and test (a prompt that shares a
// prefix with the previous one would reuse KV cache entries and flatter prompt processing), plus short texts
// for embeddings. Built with the model's own tokenizer, in the parent process, and handed to every contender.

const WORDS = (
  'time river light garden stone window morning paper silver forest market winter candle bridge letter ' +
  'mountain harbor summer engine pencil orchard thunder basket island ladder meadow shadow kitchen lantern ' +
  'valley copper blanket station feather button castle pocket violin needle planet tunnel village marble ' +
  'cotton rabbit anchor hammer jacket kettle mirror ribbon saddle tiger wagon yellow quiet gentle bright ' +
  'narrow hollow golden frozen patient careful sudden distant simple curious steady heavy early famous ' +
  'green purple orange little strong honest walks finds carries builds opens paints counts follows gathers ' +
  'watches listens answers borrows crosses dreams explains forgets grows hides joins keeps laughs moves ' +
  'notices offers plants reads remembers sings travels waits wonders writes under over between behind ' +
  'beside around through across toward after before while because although and then also still again'
).split(' ');

/** mulberry32: a small seeded PRNG, so every run of the benchmark sees the same inputs. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FILLERS = ['a', 'I', 'it', 'so', 'on', 'in', 'the', 'of', 'to', '.', ','];

/**
 * A prompt whose tokenization (with the model's BOS/EOS rules) has exactly `n` tokens when the vocabulary
 * allows it, else the longest one below. `tokenize(text)` returns the token ids the engine will decode.
 * Returns { text, tokens }.
 */
export function makePrompt(tokenize, n, seed) {
  const random = rng(seed);
  const pick = () => WORDS[Math.floor(random() * WORDS.length)];
  // The first word varies with the seed: prompts of different runs and tests differ from their first token on
  // (only the BOS token, if any, is shared).
  let text = '';
  let tokens = tokenize(text);
  for (let guard = 0; tokens.length < n && guard < 8 * n; guard++) {
    let placed = false;
    const first = text === '' ? [WORDS[seed % WORDS.length], 'abcdefghijklmnopqrstuvwxyz'[seed % 26], String(seed % 97)] : [];
    for (const word of [...first, pick(), pick(), ...FILLERS]) {
      const candidate = text === '' ? word : `${text} ${word}`;
      const t = tokenize(candidate);
      if (t.length <= n) {
        text = candidate;
        tokens = t;
        placed = true;
        break;
      }
    }
    if (!placed) break;
  }
  return { text, tokens: Array.from(tokens) };
}

/** `count` short distinct sentences (about 8-12 tokens each) for the embeddings test. */
export function makeTexts(count, seed) {
  const random = rng(seed);
  const pick = () => WORDS[Math.floor(random() * WORDS.length)];
  return Array.from({ length: count }, (_, i) => `${i + 1}. The ${pick()} ${pick()} ${pick()} the ${pick()} ${pick()}.`);
}
