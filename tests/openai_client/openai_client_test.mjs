// `tailor serve` driven by the official openai Node client, as users' programs call it.
// Usage (ctest runs it): node openai_client_test.mjs TAILOR_BINARY SHARED_DIR CLIENT_DIR
//   CLIENT_DIR: where tests/openai_client/setup.sh installed the `openai` package.
// Compiles a small stories260K package (and a tiny Qwen3 one for tool calls) into a temp dir,
// starts `tailor serve --port 0` on each, runs the checks, stops the servers with SIGTERM (they
// must exit 0). Exits non-zero on the first failure.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';

const [tailor, sharedDir, clientDir] = process.argv.slice(2);
if (!tailor || !sharedDir || !clientDir) {
  console.error('usage: node openai_client_test.mjs TAILOR_BINARY SHARED_DIR CLIENT_DIR');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(clientDir), 'package.json'));
const openaiModule = require('openai');
const OpenAI = openaiModule.OpenAI ?? openaiModule.default ?? openaiModule;
// The client's structured-output helper: a zod schema turned into response_format, and the
// reply parsed back into message.parsed.
const { zodResponseFormat } = require('openai/helpers/zod');
const { z } = require('zod');

const KEY = 'sk-node-test';
const MODEL = 'stories-node';
const tmp = mkdtempSync(path.join(tmpdir(), 'tailor_openai_node_'));

function compilePackage() {
  const stories = path.join(sharedDir, 'models', 'stories260K');
  writeFileSync(path.join(tmp, 'specs.json'), JSON.stringify({
    specializations: [
      { batch_size: '1', seq_len: '16', ctx_len: '256' },
      { batch_size: '4', seq_len: '1', ctx_len: '256' },
    ],
  }));
  const r = spawnSync(tailor, ['compile', '--model', path.join(stories, 'stories260K.bin'), '--tokenizer',
    path.join(stories, 'tok512.bin'), '--specializations', path.join(tmp, 'specs.json'), '--out',
    path.join(tmp, 'pkg'), '--compile-only', '--target', 'native'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tailor compile failed: ${r.stderr}`);
  return path.join(tmp, 'pkg');
}

// Tool calls need room for the tool descriptions: tiny Qwen3 (random weights, its own template,
// which renders tools) with a 1024-token context.
function compileQwenPackage() {
  const models = path.join(sharedDir, 'models');
  writeFileSync(path.join(tmp, 'qwen-specs.json'), JSON.stringify({
    specializations: [
      { batch_size: '1', seq_len: '64', ctx_len: '1024' },
      { batch_size: '2', seq_len: '1', ctx_len: '1024' },
    ],
  }));
  const r = spawnSync(tailor, ['compile', '--model', path.join(models, 'tiny-qwen3'), '--tokenizer',
    path.join(models, 'tokenizers', 'qwen3', 'tokenizer.json'), '--specializations', path.join(tmp, 'qwen-specs.json'),
    '--out', path.join(tmp, 'qwen'), '--compile-only', '--target', 'native'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tailor compile failed: ${r.stderr}`);
  return path.join(tmp, 'qwen');
}

function startServer(pkg) {
  return new Promise((resolve, reject) => {
    const child = spawn(tailor, ['serve', '--package', pkg, '--port', '0', '--api-key', KEY,
      '--served-model-name', MODEL], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 60000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      err += d;
      const m = err.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m && timer) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]), stderr: () => err });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${err}`)));
  });
}

async function expectError(promise, status, check) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert.equal(e.status, status, `status of ${e.message}`);
    if (check) check(e);
    return;
  }
  assert.fail(`expected HTTP ${status}`);
}

async function run(port, toolPort) {
  const baseURL = `http://127.0.0.1:${port}/v1`;
  const client = new OpenAI({ apiKey: KEY, baseURL, maxRetries: 0, timeout: 60000 });
  const toolClient = new OpenAI({ apiKey: KEY, baseURL: `http://127.0.0.1:${toolPort}/v1`, maxRetries: 0, timeout: 60000 });

  // Models list.
  const models = await client.models.list();
  const ids = [];
  for await (const m of models) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);

  // Completions (greedy, deterministic), with usage.
  const completion = await client.completions.create({
    model: MODEL, prompt: 'Once upon a time', max_tokens: 12, temperature: 0, logprobs: 2,
  });
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices.length, 1);
  assert.ok(completion.choices[0].text.length > 0);
  assert.equal(completion.choices[0].logprobs.tokens.length, 12);
  assert.equal(completion.usage.completion_tokens, 12);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + 12);

  // Streamed completions give the same text.
  const cstream = await client.completions.create({
    model: MODEL, prompt: 'Once upon a time', max_tokens: 12, temperature: 0, stream: true,
  });
  let streamed = '';
  for await (const chunk of cstream) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, completion.choices[0].text);

  // Chat, then streamed chat with usage.
  const chat = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'A story' }],
    max_completion_tokens: 10, temperature: 0, seed: 3, user: 'node-test',
  });
  assert.equal(chat.object, 'chat.completion');
  assert.equal(chat.choices[0].message.role, 'assistant');
  assert.equal(typeof chat.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(chat.choices[0].finish_reason));

  const stream = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'A story' }], max_tokens: 10, temperature: 0,
    stream: true, stream_options: { include_usage: true },
  });
  let content = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      content += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(usage, 'no usage chunk');
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 10);
  assert.ok(['stop', 'length'].includes(finish));
  const plainChat = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'A story' }], max_tokens: 10, temperature: 0,
  });
  assert.equal(content, plainChat.choices[0].message.content);

  // Structured outputs: response_format json_schema; the content parses and fits the schema.
  const personSchema = {
    type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } },
    required: ['name', 'age'], additionalProperties: false,
  };
  for (const seed of [1, 2, 3]) {
    const structured = await client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'A person' }], max_tokens: 80, temperature: 1.0, seed,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: personSchema, strict: true } },
    });
    assert.equal(structured.choices[0].finish_reason, 'stop');
    const person = JSON.parse(structured.choices[0].message.content);
    assert.deepEqual(Object.keys(person), ['name', 'age']);
    assert.equal(typeof person.name, 'string');
    assert.ok(Number.isInteger(person.age), `age ${person.age}`);
  }

  // The same through the client's own helper: zod's schema (its integers carry the safe-integer
  // minimum/maximum, a non-negative one minimum 0), chat.completions.parse, message.parsed.
  const Pet = z.object({ kind: z.enum(['cat', 'dog', 'bird']), name: z.string(), legs: z.number().int().min(0).max(8) });
  const Owner = z.object({ name: z.string(), age: z.number().int(), pets: z.array(Pet).max(3), city: z.string().nullable() });
  for (const seed of [4, 5]) {
    const parsed = await client.chat.completions.parse({
      model: MODEL, messages: [{ role: 'user', content: 'An owner and pets' }], max_tokens: 150, temperature: 1.0, seed,
      response_format: zodResponseFormat(Owner, 'owner'),
    });
    const choice = parsed.choices[0];
    assert.equal(choice.finish_reason, 'stop');
    assert.ok(choice.message.parsed, `not parsed: ${choice.message.content}`);
    const owner = Owner.parse(choice.message.parsed);  // throws unless it fits the schema
    for (const pet of owner.pets) assert.ok(pet.legs >= 0 && pet.legs <= 8, `legs ${pet.legs}`);
  }

  // Tool calls: tool_choice required (non-streamed), a named function through the client's
  // stream helper (which assembles delta.tool_calls), then the tool's result sent back.
  const tools = [{
    type: 'function',
    function: {
      name: 'get_weather', description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
    },
  }];
  const question = { role: 'user', content: 'What is the weather in Paris?' };
  const called = await toolClient.chat.completions.create({
    model: MODEL, messages: [question], tools, tool_choice: 'required', max_tokens: 80, temperature: 0,
  });
  assert.equal(called.choices[0].finish_reason, 'tool_calls');
  assert.equal(called.choices[0].message.content, null);
  const call = called.choices[0].message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_[A-Za-z0-9]{24}$/);
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof JSON.parse(call.function.arguments).city, 'string');

  const runner = toolClient.chat.completions.stream({
    model: MODEL, messages: [question], tools, max_tokens: 80, temperature: 0,
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  const doneArgs = [];
  runner.on('tool_calls.function.arguments.done', (e) => doneArgs.push(e.arguments));
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  const streamedCall = final.choices[0].message.tool_calls[0];
  assert.match(streamedCall.id, /^call_/);
  assert.equal(streamedCall.function.name, 'get_weather');
  assert.equal(streamedCall.function.arguments, call.function.arguments);  // greedy: the same call
  assert.deepEqual(doneArgs, [call.function.arguments]);

  const followup = await toolClient.chat.completions.create({
    model: MODEL, max_tokens: 8, temperature: 0, tools,
    messages: [question, called.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '21 degrees' }],
  });
  assert.equal(followup.object, 'chat.completion');

  // Errors: authentication, an invalid parameter, an unknown model.
  const wrongKey = new OpenAI({ apiKey: 'wrong', baseURL, maxRetries: 0 });
  await expectError(wrongKey.models.list(), 401, (e) => assert.ok(e instanceof OpenAI.AuthenticationError));
  await expectError(client.completions.create({ model: MODEL, prompt: 'x', temperature: 5 }), 400, (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'temperature');
  });
  await expectError(client.chat.completions.create({ model: 'gpt-unknown', messages: [{ role: 'user', content: 'x' }] }),
    404, (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError);
      assert.equal(e.code, 'model_not_found');
    });
}

let server = null;
let toolServer = null;
let exitCode = 0;
try {
  const pkg = compilePackage();
  server = await startServer(pkg);
  toolServer = await startServer(compileQwenPackage());
  await run(server.port, toolServer.port);
  console.log('openai client checks passed');
} catch (e) {
  console.error(`FAILED: ${e.stack ?? e}`);
  if (server) console.error(`server stderr:\n${server.stderr()}`);
  if (toolServer) console.error(`tool server stderr:\n${toolServer.stderr()}`);
  exitCode = 1;
}
for (const s of [server, toolServer]) {
  if (!s) continue;
  const child = s.child;
  child.removeAllListeners('exit');
  const code = await new Promise((resolve) => {
    child.on('exit', (c, sig) => resolve(c ?? `signal ${sig}`));
    child.kill('SIGTERM');
  });
  if (code !== 0) {
    console.error(`tailor serve exited with ${code} after SIGTERM:\n${s.stderr()}`);
    exitCode = 1;
  }
}
rmSync(tmp, { recursive: true, force: true });
process.exit(exitCode);
