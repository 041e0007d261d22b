// Renders one chat template in a child process, so that a crash or a hang fails the test instead of the runner.
//   template-child.cjs <model> <job.json>
// job: { template, messages?, limits?, sync?, abortAfterMs? }. Prints one JSON line: { ok, code, message, length,
// ms, ticks (event-loop ticks seen during the render: the main thread was free), maxRssMb }.
'use strict';
const { loadModel } = require(process.env.TEA_REPO_ROOT);

const [model, jobFile] = process.argv.slice(2);
const job = JSON.parse(require('node:fs').readFileSync(jobFile, 'utf8'));

(async () => {
  const m = await loadModel(model, { vocabOnly: true });
  const messages = job.messages ?? [{ role: 'user', content: 'hi' }];
  const controller = new AbortController();
  if (job.abortAfterMs !== undefined) setTimeout(() => controller.abort(), job.abortAfterMs);
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 10);
  const started = performance.now();
  const out = {};
  try {
    const options = { template: job.template, limits: job.limits };
    const prompt = job.sync ? m.applyChatTemplateSync(messages, options) : await m.applyChatTemplate(messages, { ...options, signal: controller.signal });
    Object.assign(out, { ok: true, length: prompt.length });
  } catch (error) {
    Object.assign(out, { ok: false, code: error.code, message: error.message });
  }
  out.ms = performance.now() - started;
  clearInterval(ticker);
  out.ticks = ticks;
  out.maxRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  await m.dispose();
})();
