import { LlamaError } from '../errors';

/** One server-sent event. */
export interface SseEvent {
  /** The `event:` field; 'message' when absent. */
  event: string;
  /** The `data:` lines, joined with '\n'. */
  data: string;
}

/** Longest line accepted before the stream is declared malformed (a server that never sends a newline). */
const MAX_LINE = 16 * 1024 * 1024;

/**
 * Parses a text/event-stream body (the WHATWG server-sent events format): lines end in CRLF, LF or CR, `data:`
 * lines accumulate until a blank line dispatches the event, lines starting with ':' are comments. An event still
 * pending when the stream ends is dispatched too (some servers omit the final blank line).
 */
export async function* parseSse(body: AsyncIterable<Uint8Array>, options: { maxEventBytes?: number } = {}): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder('utf-8');
  // `data:` lines without the blank line that ends an event would otherwise accumulate without end.
  const maxEvent = options.maxEventBytes ?? MAX_LINE;
  let buffer = '';
  let first = true;
  let event = '';
  let data: string[] = [];
  let dataLength = 0;

  function* lines(final: boolean): Generator<string> {
    for (;;) {
      const lf = buffer.indexOf('\n');
      const cr = buffer.indexOf('\r');
      const end = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      if (end < 0) break;
      // A CR at the end of the buffer may be the first half of a CRLF split across reads.
      if (end === cr && end === buffer.length - 1 && !final) break;
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end === cr && buffer[end + 1] === '\n' ? end + 2 : end + 1);
      yield line;
    }
    if (buffer.length > MAX_LINE) throw new LlamaError('ERR_API_PROTOCOL', `malformed event stream: a line longer than ${MAX_LINE} bytes`);
    if (final && buffer.length > 0) {
      const rest = buffer;
      buffer = '';
      yield rest;
    }
  }

  function* take(final: boolean): Generator<SseEvent> {
    for (const line of lines(final)) {
      if (line === '') {
        if (data.length > 0) yield { event: event || 'message', data: data.join('\n') };
        event = '';
        data = [];
        dataLength = 0;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') {
        data.push(value);
        dataLength += value.length + 1;
        if (dataLength > maxEvent) throw new LlamaError('ERR_API_PROTOCOL', `malformed event stream: an event longer than ${maxEvent} bytes`);
      }
      else if (field === 'event') event = value;
      // 'id' and 'retry' do not matter for one-shot API streams; unknown fields are ignored, as the format says.
    }
    if (final && data.length > 0) {
      yield { event: event || 'message', data: data.join('\n') };
      data = [];
    }
  }

  for await (const chunk of body) {
    let text = decoder.decode(chunk, { stream: true });
    if (first && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      first = false;
    }
    buffer += text;
    yield* take(false);
  }
  buffer += decoder.decode();
  yield* take(true);
}
