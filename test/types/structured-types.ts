// Compiled by test/structured-types.test.ts (tsc --noEmit, strict): `parsed` takes the type of a literal schema.
import type { LlamaModel } from '../../lib';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const yes = <T extends true>(): T => true as T;

export async function check(model: LlamaModel): Promise<void> {
  const person = await model.complete('x', {
    jsonSchema: {
      type: 'object',
      properties: { name: { type: 'string' }, age: { type: 'integer' }, pet: { enum: ['cat', 'dog'] }, tags: { type: 'array', items: { type: 'string' } } },
      required: ['name', 'age'],
    },
    maxTokens: 10,
    stop: ['\n'],
  });
  yes<Equal<typeof person.parsed, { name: string; age: number; pet?: 'cat' | 'dog'; tags?: string[] } | undefined>>();

  const chat = await model.chat([{ role: 'user', content: 'x' }], {
    responseFormat: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'array', items: { anyOf: [{ type: 'number' }, { const: null }] } } } },
  });
  yes<Equal<typeof chat.parsed, (number | null)[] | undefined>>();

  const plain = await model.complete('x', { maxTokens: 4 });
  yes<Equal<typeof plain.parsed, unknown>>();
  plain.text.toUpperCase();
  // @ts-expect-error: a typed result is no `any`
  person.parsed?.missing.toString();
}
