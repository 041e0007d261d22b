// Seeded chat template cases for the template fuzz target (run-template-fuzz.mjs): case `index` of seed `seed` is
// always the same template. Kinds: recursion, nesting, loops, huge literals, filters on wrong types, and the real
// templates of vendor/llama.cpp/models/templates mutated.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { rng } from './gguf-mutator.mjs';

const VALUES = [
  '0', '-1', '1e308', '3.5', "''", "'abc'", "'a\\nb'", '[]', '[1, [2, [3]]]', '{}', "{'a': 1, 'b': [1, 2]}", 'none', 'true',
  'undefined_var', 'messages', 'messages[0]', 'namespace(x=1)', 'range(3)', "'x' * 1000", 'tools',
];
const FILTERS = [
  'length', 'count', 'first', 'last', 'join', "join(', ')", 'tojson', 'tojson(indent=4)', 'trim', 'upper', 'lower', 'title',
  'capitalize', 'int', 'float', 'string', 'list', 'items', 'keys', 'values', 'sort', 'reverse', 'unique', 'abs', 'round',
  'default(1)', 'map(attribute="a")', 'selectattr("a")', "rejectattr('a', 'equalto', 1)", 'replace("a", "bb")',
  'replace("", "xyz")', 'indent(4)', 'indent(100000)', 'center(1000)', 'batch(2)', 'slice(3)', 'sum', 'min', 'max',
  'dictsort', 'safe', 'e', 'striptags', 'wordcount', 'truncate(3)', 'split(",")', 'format(1, 2)', 'attr("a")', 'select',
  'reject', 'groupby("a")', 'tojson(sort_keys=true)', 'startswith("a")', 'endswith("a")', 'string | list | join',
];
const TESTS = ['defined', 'undefined', 'none', 'string', 'number', 'iterable', 'mapping', 'sequence', 'odd', 'even', 'divisibleby(0)', 'in([1])', 'eq(1)'];
const FRAGMENTS = [
  '{{', '}}', '{%', '%}', '{#', '#}', '{%- ', ' -%}', '{% endif %}', '{% endfor %}', '{% else %}', '{% elif x %}', '{% if ', '{% for x in ',
  '{% set x = ', '{% macro m() %}', '{% endmacro %}', '{{ m() }}', '(', ')', '[', ']', '{', '}', '|', '~', '*', '+', '-', '/', '//', '%',
  '**', ' is ', ' not ', ' and ', ' or ', ' in ', ',', ':', '.', "'", '"', '\\', 'loop.index', 'loop.cycle(1, 2)', 'raise_exception("x")',
  'namespace(', 'range(99999999)', 'messages * 1000', '\u0000', '\u00ff', '\ud83d\ude00',
];

const pick = (r, list) => list[r.int(list.length)];

function recursion(r) {
  switch (r.int(5)) {
    case 0: return '{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}';
    case 1: return '{% macro a(n) %}{{ b(n) }}{% endmacro %}{% macro b(n) %}{{ a(n) }}{% endmacro %}{{ a(1) }}';
    case 2: return `{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}x{% endmacro %}{{ f(${r.pick([10, 100, 250, 1000, 100000])}) }}`;
    case 3: return '{% macro f() %}{% call f() %}x{% endcall %}{{ caller() }}{% endmacro %}{% call f() %}y{% endcall %}';
    default: return `{% set ns = namespace(a=1) %}{% set ns.self = ns %}{{ ns | ${pick(r, ['tojson', 'string', 'list', 'items', 'length', 'dictsort'])} }}`;
  }
}

function nesting(r) {
  const n = r.pick([10, 200, 300, 1000, 5000, 50000]);
  switch (r.int(7)) {
    case 0: return '{% if true %}'.repeat(n) + 'x' + '{% endif %}'.repeat(n);
    case 1: return '{% for i in [1] %}'.repeat(n) + 'x' + '{% endfor %}'.repeat(n);
    case 2: return '{{ ' + '('.repeat(n) + '1' + ')'.repeat(n) + ' }}';
    case 3: return '{{ ' + '['.repeat(n) + ']'.repeat(n) + ' }}';
    case 4: return '{{ ' + 'not '.repeat(n) + 'true }}';
    case 5: return '{{ ' + '- '.repeat(n) + '1 }}';
    default: return `{% set ns = namespace(a=[]) %}{% for i in range(${n}) %}{% set ns.a = [ns.a] %}{% endfor %}{{ ns.a | ${pick(r, ['tojson', 'string', 'length', 'first'])} }}`;
  }
}

function loops(r) {
  const n = r.pick([10, 1000, 100000, 1000000000]);
  switch (r.int(4)) {
    case 0: return `{% for i in range(${n}) %}{% endfor %}`;
    case 1: return `{% for a in range(${n}) %}{% for b in range(${n}) %}{{ a }}{% endfor %}{% endfor %}`;
    case 2: return `{% for m in messages * ${r.pick([2, 1000, 100000])} %}{{ m.content }}{% endfor %}`;
    default: return `{% set ns = namespace(i=0) %}{% for x in range(${n}) %}{% set ns.i = ns.i + 1 %}{% if ns.i > 5 %}{% break %}{% endif %}{% endfor %}{{ ns.i }}`;
  }
}

function literals(r) {
  switch (r.int(5)) {
    case 0: return `{{ '${'x'.repeat(r.pick([1000, 100000, 2000000]))}' }}`;
    case 1: return `{{ 'x' * ${r.pick([10, 1e6, 1e8, 1e10, -5])} }}`;
    case 2: return `{% set ns = namespace(s='${pick(r, ['x', 'abc', ''])}') %}{% for i in range(${r.pick([8, 30, 64])}) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}`;
    case 3: return `{{ ${r.pick([1e6, 1e8])} * 'ab' | ${pick(r, ['length', 'upper', 'tojson', 'list | length', 'replace("a", "xyz") | length'])} }}`;
    default: return `{{ range(${r.pick([10, 100000, 10000000])}) | ${pick(r, ['join', 'tojson', 'list', 'sum', 'length', 'string | length'])} }}`;
  }
}

function filters(r) {
  const parts = [];
  const n = 1 + r.int(4);
  for (let i = 0; i < n; i++) {
    const value = pick(r, VALUES);
    const chain = Array.from({ length: 1 + r.int(3) }, () => pick(r, FILTERS)).join(' | ');
    parts.push(r.chance(0.2) ? `{{ ${value} is ${pick(r, TESTS)} }}` : `{{ ${value} | ${chain} }}`);
  }
  return parts.join('');
}

function mutate(r, source) {
  let s = source;
  const edits = 1 + r.int(6);
  for (let i = 0; i < edits; i++) {
    const at = r.int(s.length + 1);
    const len = r.int(Math.min(64, s.length - at) + 1);
    switch (r.int(6)) {
      case 0: s = s.slice(0, at) + s.slice(at + len); break; // delete a span
      case 1: s = s.slice(0, at) + s.slice(at, at + len).repeat(2 + r.int(50)) + s.slice(at + len); break; // repeat a span
      case 2: s = s.slice(0, at) + pick(r, FRAGMENTS) + s.slice(at); break; // insert a fragment
      case 3: s = s.slice(0, at) + `{{ ${pick(r, VALUES)} | ${pick(r, FILTERS)} }}` + s.slice(at); break; // a filter on a wrong type
      case 4: s = s.slice(0, at); break; // truncate
      default: { // swap two spans
        const b = r.int(s.length + 1);
        const [x, y] = at < b ? [at, b] : [b, at];
        s = s.slice(0, x) + s.slice(y, y + len) + s.slice(x + len, y) + s.slice(x, x + len) + s.slice(y + len);
      }
    }
  }
  return s;
}

export class TemplateFuzzer {
  constructor(templatesDir, seed) {
    this.seed = seed;
    this.templates = readdirSync(templatesDir).filter((f) => f.endsWith('.jinja')).sort().map((f) => ({ name: f, source: readFileSync(join(templatesDir, f), 'utf8') }));
  }

  /** Case `index`: { kind, description, template }. */
  case(index) {
    const r = rng(this.seed * 1_000_003 + index);
    const kind = ['recursion', 'nesting', 'loops', 'literals', 'filters', 'mutated', 'mutated', 'mutated'][r.int(8)];
    if (kind === 'mutated') {
      const base = r.pick(this.templates);
      return { kind, description: `${base.name} mutated`, template: mutate(r, base.source) };
    }
    const template = { recursion, nesting, loops, literals, filters }[kind](r);
    return { kind, description: `${kind}: ${template.slice(0, 100)}`, template };
  }
}
