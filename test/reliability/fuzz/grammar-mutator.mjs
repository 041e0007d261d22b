// Seeded grammar and schema cases for the constrained-output fuzzer (run-grammar-fuzz.mjs): malformed GBNF (the
// valid grammars below mutated), deep nesting, huge repetition counts, long alternations, left recursion; JSON
// schemas with $ref cycles, unsupported keywords and types, wrong-typed values, deep nesting, huge bounds, and the
// valid schemas mutated. Case i of seed s is always the same.

const GRAMMARS = [
  'root ::= ("yes" | "no") " " [a-z]{3,8} "."',
  'root ::= object\nobject ::= "{" ws pair ("," ws pair)* "}"\npair ::= string ":" ws value\nstring ::= "\\"" [a-z]* "\\""\nvalue ::= string | [0-9]+\nws ::= [ \\t\\n]*',
  'root ::= item+\nitem ::= "- " [^\\n]+ "\\n"',
  'root ::= [A-Z] [a-z]{0,12} (" " [a-z]{1,10}){0,5} "."  # a sentence',
];

const SCHEMAS = [
  { type: 'object', properties: { name: { type: 'string', maxLength: 20 }, age: { type: 'integer', minimum: 0 } }, required: ['name'] },
  { type: 'array', items: { enum: ['a', 'b', 'c'] }, minItems: 1, maxItems: 4 },
  { oneOf: [{ type: 'string', pattern: '^[a-z]+$' }, { type: 'number' }, { const: null }] },
  { $defs: { node: { type: 'object', properties: { value: { type: 'integer' }, next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } } } }, $ref: '#/$defs/node' },
];

const KEYWORDS = ['type', 'properties', 'items', 'required', 'enum', 'const', 'oneOf', 'anyOf', 'allOf', 'not', '$ref', 'pattern', 'format', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'additionalProperties', 'prefixItems', 'if', 'then', '$defs', 'definitions', 'patternProperties', 'dependentRequired', 'contains', 'uniqueItems'];
const TYPES = ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array', 'frob', '', 42, null];
const VALUES = [-1, 0, 1, 1e9, 2 ** 53, -1e308, 1.5, 'x', '', '(', '^[', null, true, [], {}, [1, 'a'], { type: 'frob' }];

class Random {
  constructor(seed) {
    this.s = seed >>> 0 || 1;
  }
  next() {
    // xorshift32: deterministic across platforms
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s / 4294967296;
  }
  int(n) {
    return Math.floor(this.next() * n);
  }
  pick(list) {
    return list[this.int(list.length)];
  }
}

const GBNF_PIECES = ['(', ')', '"', '[', ']', '|', '*', '+', '?', '{', '}', '::=', '\\', '\n', ' ', 'root', 'x', '{0,', '9999}', '#', '^', '-'];

function mutateText(r, text) {
  let out = text;
  const edits = 1 + r.int(4);
  for (let e = 0; e < edits; e++) {
    const at = r.int(out.length + 1);
    switch (r.int(3)) {
      case 0:
        out = out.slice(0, at) + out.slice(at + 1 + r.int(4));
        break;
      case 1:
        out = out.slice(0, at) + r.pick(GBNF_PIECES) + out.slice(at);
        break;
      default:
        out = out.slice(0, at) + out.slice(r.int(out.length), r.int(out.length)) + out.slice(at);
    }
  }
  return out;
}

function mutateSchema(r, schema, depth = 0) {
  if (typeof schema !== 'object' || schema === null) return r.next() < 0.3 ? r.pick(VALUES) : schema;
  const copy = Array.isArray(schema) ? [...schema] : { ...schema };
  const keys = Object.keys(copy);
  const op = r.int(4);
  if (op === 0 && keys.length > 0) delete copy[r.pick(keys)];
  else if (op === 1) copy[r.pick(KEYWORDS)] = r.pick([...VALUES, ...TYPES]);
  else if (op === 2 && keys.length > 0) copy[r.pick(keys)] = r.pick(VALUES);
  for (const k of Object.keys(copy)) if (depth < 4 && r.next() < 0.4) copy[k] = mutateSchema(r, copy[k], depth + 1);
  return copy;
}

function nestSchema(depth) {
  let s = { type: 'string' };
  for (let i = 0; i < depth; i++) s = { type: 'object', properties: { a: s }, required: ['a'] };
  return s;
}

const KINDS = ['gbnf-mutated', 'gbnf-deep', 'gbnf-repetition', 'gbnf-wide', 'gbnf-left-recursion', 'schema-cycle', 'schema-unsupported', 'schema-mutated', 'schema-deep', 'schema-bounds'];

export class GrammarFuzzer {
  constructor(seed) {
    this.seed = seed;
  }

  /** Case i: { kind, description, options } where options is { grammar } or { jsonSchema }. */
  case(i) {
    const r = new Random((this.seed * 1_000_003 + i * 7919) >>> 0);
    const kind = KINDS[i % KINDS.length];
    switch (kind) {
      case 'gbnf-mutated': {
        const base = r.pick(GRAMMARS);
        return { kind, description: 'a valid grammar mutated', options: { grammar: mutateText(r, base) } };
      }
      case 'gbnf-deep': {
        const depth = r.pick([10, 100, 500, 5000, 100_000]);
        return { kind, description: `parentheses nested ${depth} deep`, options: { grammar: `root ::= ${'('.repeat(depth)}"a"${')'.repeat(depth)}` } };
      }
      case 'gbnf-repetition': {
        const n = r.pick([10, 2000, 5000, 1_000_000, 4_294_967_295, 1e20]);
        return { kind, description: `repetition {${n}}`, options: { grammar: `root ::= "a"{${n}} [b-z]{0,${n}}` } };
      }
      case 'gbnf-wide': {
        const n = r.pick([100, 1000, 8000, 100_000]);
        const alts = Array.from({ length: n }, (_, k) => `"w${k}"`).join(' | ');
        return { kind, description: `${n} alternatives`, options: { grammar: `root ::= ${alts}` } };
      }
      case 'gbnf-left-recursion':
        return { kind, description: 'left recursion', options: { grammar: r.pick(['root ::= root "a" | "b"', 'root ::= a\na ::= b "x"\nb ::= a | "y"', 'root ::= x*\nx ::= x? "z"']) } };
      case 'schema-cycle': {
        const schema = r.pick([
          { $ref: '#/$defs/a', $defs: { a: { $ref: '#/$defs/a' } } },
          { $ref: '#/$defs/a', $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/a' } } },
          { $ref: '#/$defs/a', $defs: { a: { anyOf: [{ $ref: '#/$defs/a' }, { type: 'string' }] } } },
          { type: 'object', properties: { self: { $ref: '#' } } },
          { $ref: '#/definitions/missing' },
          { $ref: 'https://example.com/remote.json' },
        ]);
        return { kind, description: 'a $ref cycle or an unresolvable $ref', options: { jsonSchema: schema } };
      }
      case 'schema-unsupported': {
        const schema = { [r.pick(KEYWORDS)]: r.pick([...VALUES, ...TYPES]), type: r.pick(TYPES) };
        return { kind, description: 'an unsupported keyword or type', options: { jsonSchema: schema } };
      }
      case 'schema-mutated':
        return { kind, description: 'a valid schema mutated', options: { jsonSchema: mutateSchema(r, r.pick(SCHEMAS)) } };
      case 'schema-deep': {
        const depth = r.pick([5, 50, 100, 1000, 10_000]);
        return { kind, description: `objects nested ${depth} deep`, options: { jsonSchema: nestSchema(depth) } };
      }
      default: {
        const n = r.pick([5, 1000, 100_000, 1e9, 1e18]);
        const schema = r.pick([
          { type: 'array', items: { type: 'integer' }, minItems: n, maxItems: n },
          { type: 'string', minLength: n },
          { type: 'integer', minimum: -n, maximum: n },
          { type: 'array', prefixItems: Array.from({ length: Math.min(n, 2000) }, () => ({ type: 'boolean' })) },
        ]);
        return { kind, description: `bounds of ${n}`, options: { jsonSchema: schema } };
      }
    }
  }
}

export const GRAMMAR_KINDS = KINDS;
