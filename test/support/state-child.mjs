// A child process for the saved-state tests (test/state.test.ts): one job from argv[2] (JSON), its answer as one
// JSON line on stdout. Saving in one process and continuing in another is the point: nothing is shared but the file.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const lib = require('../../dist/cjs/index.js');

const job = JSON.parse(process.argv[2]);
const model = await lib.loadModel(job.model, { contextSize: 512, threads: 1, sequences: 2 });
const greedy = { temperature: 0, maxTokens: job.maxTokens };
const out = {};
try {
  switch (job.mode) {
    case 'save': {
      const r = await model.complete(job.prompt, greedy);
      out.text = r.text;
      out.saved = await model.saveState(job.file, { sequence: r.sequence });
      break;
    }
    case 'continue': {
      out.restored = await model.loadState(job.file);
      const r = await model.complete(job.prompt, greedy);
      Object.assign(out, { text: r.text, reused: r.reusedPromptTokens, promptTokens: r.promptTokens });
      break;
    }
    case 'fresh': {
      const r = await model.complete(job.prompt, greedy);
      Object.assign(out, { text: r.text, reused: r.reusedPromptTokens });
      break;
    }
    case 'session': {
      // turns: the user messages; save: write the session after them; load: start from that file
      const session = job.load ? await model.loadChatSession(job.load) : await model.createChatSession({ systemPrompt: 'You tell stories.', template: 'chatml' });
      out.turns = [];
      for (const text of job.turns) {
        const t = await session.send(text, greedy);
        out.turns.push({ text: t.text, promptTokens: t.promptTokens, reused: t.reusedPromptTokens });
      }
      if (job.save) out.saved = await session.save(job.save);
      out.messages = session.messages;
      await session.dispose();
      break;
    }
    case 'load-error': {
      try {
        await model.loadState(job.file);
        out.code = 'ok';
      } catch (error) {
        out.code = error instanceof lib.LlamaError ? error.code : `UNTYPED ${error}`;
      }
      break;
    }
  }
} finally {
  await model.dispose();
}
process.stdout.write(`${JSON.stringify(out)}\n`);
