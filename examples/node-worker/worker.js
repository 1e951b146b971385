// A Baton worker in Node.js, built only from proto/ (loaded at run time with
// @grpc/proto-loader): it serves agents and tools by polling WorkerService for tasks.
//
//   node worker.js HOST:PORT NAME [NAME ...]     (each NAME agents/{id} or tools/{id})
//
// Every agent it serves reverses `input.text` and counts its words; every tool it serves
// (called by LLM agents) gives the statistics of its `text` argument. Any language with gRPC
// can do the same: poll PollTasks, heartbeat while working, answer CompleteTask or FailTask.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '../../proto');
const definition = protoLoader.loadSync(path.join(PROTO_ROOT, 'baton/v1/worker.proto'), {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const baton = grpc.loadPackageDefinition(definition).baton.v1;

// google.protobuf.Struct <-> plain JavaScript values. (protobufjs ships the well-known types
// with camelCase field names, whatever keepCase says.)
function fromValue(value) {
  switch (value.kind) {
    case 'nullValue': return null;
    case 'numberValue': return value.numberValue;
    case 'stringValue': return value.stringValue;
    case 'boolValue': return value.boolValue;
    case 'structValue': return fromStruct(value.structValue);
    case 'listValue': return (value.listValue.values || []).map(fromValue);
    default: return null;
  }
}
function fromStruct(struct) {
  const result = {};
  for (const [key, value] of Object.entries((struct && struct.fields) || {})) {
    result[key] = fromValue(value);
  }
  return result;
}
function toValue(value) {
  if (value === null || value === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  return { structValue: toStruct(value) };
}
function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value);
  return { fields };
}

// The agent itself.
async function reverse(input, task) {
  const text = String(input.text || '');
  return {
    reversed: text.split('').reverse().join(''),
    words: text.split(/\s+/).filter(Boolean).length,
    runtime: 'node',
    pid: process.pid,
    attempt: task.attempt,
  };
}

// The tool: a task whose `tool` is set carries the model's arguments as its input.
async function textStats(args) {
  const text = String(args.text || '');
  return {
    words: text.split(/\s+/).filter(Boolean).length,
    characters: text.length,
    runtime: 'node',
    pid: process.pid,
  };
}

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function serve(client, task) {
  const heartbeatMs = Math.max(50, ((task.heartbeat_timeout && task.heartbeat_timeout.seconds) || 30) * 1000 / 3);
  const beat = setInterval(() => {
    call(client, 'HeartbeatTask', { task_token: task.task_token }).catch(() => {});
  }, heartbeatMs);
  try {
    const handle = task.tool ? textStats : reverse;
    const output = await handle(fromStruct(task.input), task);
    await call(client, 'CompleteTask', { task_token: task.task_token, output: toStruct(output) });
  } catch (error) {
    await call(client, 'FailTask', {
      task_token: task.task_token,
      error: { type: error.name || 'Error', message: String(error.message || error) },
    }).catch(() => {});
  } finally {
    clearInterval(beat);
  }
}

function poll(client, names, delayMs) {
  const stream = client.PollTasks({
    agents: names.filter((n) => n.startsWith('agents/')),
    tools: names.filter((n) => n.startsWith('tools/')),
    identity: `node-${process.pid}`,
    max_concurrent_tasks: 4,
  });
  let restarted = false;
  const restart = () => {  // the stream ended or failed: reconnect once, with backoff
    if (restarted) return;
    restarted = true;
    setTimeout(() => poll(client, names, Math.min(delayMs * 2, 5000)), delayMs);
  };
  stream.on('data', (task) => { serve(client, task); });
  stream.on('error', restart);
  stream.on('end', restart);
}

const [target, ...names] = process.argv.slice(2);
if (!target || !names.length || !names.every((n) => /^(agents|tools)\//.test(n))) {
  console.error('usage: node worker.js HOST:PORT NAME [NAME ...]  (agents/{id} or tools/{id})');
  process.exit(2);
}
const client = new baton.WorkerService(target, grpc.credentials.createInsecure());
console.log(`node worker ${process.pid} serving ${names.join(', ')} at ${target}`);
poll(client, names, 200);
