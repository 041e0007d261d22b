/**
 * A realistic conversation in OpenAI's chat format, with tools, a tool call and its result, for rendering the real
 * chat templates of llama.cpp (vendor/llama.cpp/models/templates) under the default template limits.
 */
export const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather of a city',
      parameters: {
        type: 'object',
        properties: {
          city: { type: 'string', description: 'City name' },
          unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
          days: { type: 'array', items: { type: 'object', properties: { date: { type: 'string' }, hourly: { type: 'boolean' } } } },
        },
        required: ['city'],
      },
    },
  },
  {
    type: 'function',
    function: {
      name: 'search',
      description: 'Searches the web',
      parameters: { type: 'object', properties: { query: { type: 'string' }, limit: { type: 'integer' } }, required: ['query'] },
    },
  },
];

const LONG = 'The quick brown fox jumps over the lazy dog. '.repeat(200);

/** Plain turns: what every template renders. */
export const PLAIN = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Hello! Summarise this text: ' + LONG },
  { role: 'assistant', content: 'It is a pangram, repeated.' },
  { role: 'user', content: 'Thanks. And in French?' },
];

/** Tool turns: a call and its result (templates that render tools read these). */
export const WITH_TOOLS = [
  ...PLAIN,
  {
    role: 'assistant',
    content: '',
    tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"celsius"}' } }],
  },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 21, "sky": "clear"}' },
  { role: 'user', content: 'Is it warm?' },
];
