import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadModel } from '../lib';
import { cliEnv, collect, ensureCliBuilt, runCli, spawnCli, spawnPty } from './support/cli';
import { startHttpFixture, type HttpFixture } from './support/http-fixture';
import { haveModel, PHI3_VOCAB } from './support/models';
import { syntheticModel } from './support/synthetic';

// `tea-llama chat` (and Ctrl+C in `complete`), driven as a user drives them: through a pseudo-terminal
// (python3's pty module) for the interactive conversation, through pipes for scripts.

beforeAll(() => ensureCliBuilt(), 300_000);

/** An OpenAI-compatible server whose answers are scripted: an endless slow stream, or a short reply. */
interface ScriptedApi {
  fixture: HttpFixture;
  /** Request bodies, in order. */
  bodies: Array<{ messages?: Array<{ role: string; content: string }>; prompt?: string }>;
  /** For each request: whether the client closed the stream before it ended. */
  closedEarly: boolean[];
  /** What each next request gets: 'endless' streams words until the client leaves, a string is the whole reply. */
  answers: Array<'endless' | string>;
}

function sse(res: ServerResponse, body: unknown): void {
  res.write(`data: ${JSON.stringify(body)}\n\n`);
}

async function startScriptedApi(): Promise<ScriptedApi> {
  const api: ScriptedApi = { fixture: undefined as unknown as HttpFixture, bodies: [], closedEarly: [], answers: [] };
  api.fixture = await startHttpFixture((req, res, index) => {
    const body = JSON.parse(req.body);
    api.bodies.push(body);
    api.closedEarly[index] = false;
    const chat = req.url.endsWith('/chat/completions');
    const piece = (text: string, finish: string | null = null) =>
      chat ? { choices: [{ index: 0, delta: { content: text }, finish_reason: finish }] } : { choices: [{ index: 0, text, finish_reason: finish }] };
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const answer = api.answers[index] ?? 'Paris.';
    if (answer !== 'endless') {
      sse(res, piece(answer));
      sse(res, piece('', 'stop'));
      res.end('data: [DONE]\n\n');
      return;
    }
    let n = 0;
    const timer = setInterval(() => sse(res, piece(`word${n++} `)), 40);
    res.on('close', () => {
      clearInterval(timer);
      if (!res.writableEnded) api.closedEarly[index] = true;
    });
  });
  return api;
}

describe('chat through an OpenAI-compatible server (scripted answers, to see what is sent)', () => {
  let api: ScriptedApi;
  beforeAll(async () => {
    api = await startScriptedApi();
  });
  afterAll(async () => {
    await api?.fixture.close();
  });
  const reset = () => {
    api.bodies.length = 0;
    api.closedEarly.length = 0;
    api.answers.length = 0;
    api.fixture.requests.length = 0;
  };
  const apiArgs = () => ['--backend', 'api', '--api-base', api.fixture.url, '--temperature', '0'];

  it('answers one message piped into stdin, with the system prompt', async () => {
    reset();
    const r = await runCli(['chat', ...apiArgs(), '--system', 'Be brief.'], { input: 'What is the capital of France?\n' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('Paris.\n');
    expect(api.bodies[0].messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is the capital of France?' },
    ]);
  });

  it('in a terminal: Ctrl+C stops the reply without leaving, the history is kept, Ctrl+C at an empty prompt only hints, Ctrl+D leaves', async () => {
    reset();
    api.answers.push('endless', 'Rome.');
    const pty = spawnPty(['chat', ...apiArgs(), '--system', 'Be brief.'], cliEnv());
    try {
      await pty.waitFor(/\(api\): .*Ctrl\+C stops a reply\n> $/);
      pty.write('Tell me a long story\r');
      await pty.waitFor(/word3 /);
      let mark = pty.text.length;
      pty.write('\x03');
      await pty.waitFor(/\[stopped\]\n> $/, { from: mark });
      expect(api.closedEarly[0]).toBe(true); // the stream was closed by the client, not finished
      const partial = /Tell me a long story\n((?:word\d+ )+)/.exec(pty.text)![1];

      mark = pty.text.length;
      pty.write('And the capital of Italy?\r');
      await pty.waitFor(/Rome\.\n> $/, { from: mark });
      expect(api.bodies).toHaveLength(2);
      expect(api.bodies[1].messages).toEqual([
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Tell me a long story' },
        { role: 'assistant', content: partial },
        { role: 'user', content: 'And the capital of Italy?' },
      ]);

      mark = pty.text.length;
      pty.write('\x03');
      await pty.waitFor(/to leave, press Ctrl\+C again or Ctrl\+D/, { from: mark });
      pty.write('/reset\r');
      await pty.waitFor(/\(history cleared\)\n> $/, { from: mark });
      pty.write('\x04');
      expect(await pty.exited).toBe(0);
      expect(api.bodies).toHaveLength(2);
    } finally {
      pty.kill();
    }
  });

  it('Ctrl+C (SIGINT) stops complete and a piped chat: what was generated is printed, exit code 130', async () => {
    reset();
    api.answers.push('endless', 'endless');
    for (const args of [
      ['complete', ...apiArgs(), 'Once upon a time'],
      ['chat', ...apiArgs(), 'Tell me a long story'],
    ]) {
      const child = spawnCli(args, { env: cliEnv() });
      const result = collect(child);
      await new Promise<void>((done) => {
        let seen = '';
        child.stdout!.on('data', (d: Buffer | string) => {
          seen += d;
          if (/word2 /.test(seen)) done();
        });
      });
      child.kill('SIGINT');
      const r = await result;
      expect(r.code, args[0]).toBe(130);
      expect(r.stdout, args[0]).toMatch(/^word0 word1 word2 (word\d+ )*\n$/);
      expect(r.stderr, args[0]).toBe('');
    }
  });
});

describe.runIf(haveModel(PHI3_VOCAB))('chat with a local model and its own chat template (synthetic tiny phi-3)', () => {
  let model: string;
  beforeAll(async () => {
    model = await syntheticModel('tiny', 'F16');
  });

  it('answers a piped message with the reply the library gives for the same conversation', async () => {
    const r = await runCli(['chat', '--model', model, '--temperature', '0', '--max-tokens', '16'], { input: 'What is the capital of France?\n' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const m = await loadModel(model, { contextSize: 4096 });
    const lib = await m.chat([{ role: 'user', content: 'What is the capital of France?' }], { maxTokens: 16, temperature: 0 });
    await m.dispose();
    expect(lib.text.length).toBeGreaterThan(0);
    expect(r.stdout).toBe(lib.text + '\n');
  });

  it('in a terminal: a load progress bar, a streamed reply that Ctrl+C stops, and the session goes on', async () => {
    const pty = spawnPty(['chat', '--model', model, '--temperature', '0.8', '--seed', '1', '--max-tokens', '4000'], cliEnv());
    try {
      await pty.waitFor(/loading synthetic-tiny-F16\.gguf \[#{24}\] 100%/);
      await pty.waitFor(/chat with synthetic-tiny-F16\.gguf \(local\): .*\n> $/);
      let mark = pty.text.length;
      pty.write('hello\r');
      await pty.waitFor(/hello\n[\s\S]{30,}/, { from: mark });
      mark = pty.text.length;
      pty.write('\x03');
      await pty.waitFor(/\[stopped\]\n> $/, { from: mark });
      mark = pty.text.length;
      pty.write('/reset\r');
      await pty.waitFor(/\(history cleared\)\n> $/, { from: mark });
      pty.write('/exit\r');
      expect(await pty.exited).toBe(0);
    } finally {
      pty.kill();
    }
  });
});
