import { createLlmBackend } from 'tea-llama';

// Local model: TEA_MODEL_PATH=model.gguf. Any OpenAI-compatible server: LLM_BACKEND=api LLM_API_BASE=http://host:port
const llm = await createLlmBackend({ settingsFile: process.env.TEA_SETTINGS });
const prompt = process.argv[2] ?? 'Once upon a time';
const answer = await llm.call({ prompt, maxTokens: 48, temperature: 0 });
console.log(`[${answer.backend}] ${answer.content}`);
for await (const chunk of llm.stream({ prompt: answer.content, maxTokens: 24, temperature: 0 })) process.stdout.write(chunk);
console.log();
await llm.dispose();
