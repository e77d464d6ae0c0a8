// The official OpenAI client for JavaScript (npm `openai`, pinned in tools/package.json), pointed at Sparky's
// embedding service. Prints what it got back as JSON: one run with the client's default encoding (base64, which it
// decodes itself) and one asking for floats.
// Usage: node openai-node.mjs NODE_MODULES BASE_URL TEXT...
const [modules, baseURL, ...texts] = process.argv.slice(2);
const { default: OpenAI } = await import(`${modules}/openai/index.mjs`);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
const byDefault = await client.embeddings.create({ model: 'all-MiniLM-L6-v2', input: texts });
const floats = await client.embeddings.create({ model: 'all-MiniLM-L6-v2', input: texts[0], encoding_format: 'float' });
let refused = null;
try {
  await client.embeddings.create({ model: 'no-such-model', input: 'x' });
} catch (e) {
  refused = { status: e.status, message: e.error?.message ?? e.message };
}
console.log(JSON.stringify({
  model: byDefault.model,
  usage: byDefault.usage,
  vectors: byDefault.data.map(d => ({ index: d.index, embedding: Array.from(d.embedding) })),
  float: Array.from(floats.data[0].embedding),
  refused,
}));
