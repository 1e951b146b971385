// The Baton web console: a page per hash route, calling the HTTP/JSON API (/v1) with the
// caller's bearer token, and following executions live over Server-Sent Events.
// Libraries: dagre lays out workflow graphs, Chart.js draws the metrics (both served by
// Baton from /static/vendor).

const main = document.getElementById('main');
const TERMINAL = new Set(['STATE_SUCCEEDED', 'STATE_FAILED', 'STATE_CANCELLED', 'STATE_TIMED_OUT']);
const EXECUTION_STATES = ['STATE_QUEUED', 'STATE_RUNNING', 'STATE_PAUSED', 'STATE_SUCCEEDED',
  'STATE_FAILED', 'STATE_CANCELLED', 'STATE_TIMED_OUT'];
const PAGE_SIZE = 50;
let session = { permissions: [] };
let page = new AbortController(); // aborted when the route changes: streams and timers stop

// Plumbing ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function token() { return sessionStorage.getItem('baton-token') || ''; }

function headers(extra = {}) {
  const found = { ...extra };
  if (token()) found.Authorization = `Bearer ${token()}`;
  return found;
}

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.append(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// Follows an execution's events over SSE (fetch, so that the token goes in a header),
// reconnecting with Last-Event-ID until the stream ends after the terminal event.
async function follow(name, onEvent, signal) {
  let last = 0;
  for (let tries = 0; !signal.aborted && tries < 50; tries++) {
    try {
      const response = await fetch(`/v1/${name}/events:stream`, {
        headers: headers(last ? { 'Last-Event-ID': String(last) } : {}), signal,
      });
      if (!response.ok) return;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      let ended = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) { ended = true; break; }
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          const event = JSON.parse(data);
          if (event.error) return;
          last = Number(event.sequence || last);
          onEvent(event);
        }
      }
      if (ended) return;
    } catch (error) {
      if (signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (state) => h('span', { class: `badge ${state || 'STATE_PENDING'}` }, (state || 'STATE_PENDING').replace('STATE_', '').toLowerCase());
const idOf = (name) => (name || '').split('/').pop();
const seconds = (duration) => (duration ? parseFloat(duration) : 0);
const when = (time) => (time ? new Date(time).toLocaleString() : '');
const pretty = (value) => h('pre', {}, JSON.stringify(value === undefined ? {} : value, null, 2));
const may = (permission) => session.permissions.includes(permission);

function elapsed(start, end) {
  if (!start) return '';
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`;
}

function show(...nodes) { main.replaceChildren(...nodes); }

function failure(error) {
  if (error instanceof ApiError && error.status === 401) return login();
  show(h('p', { class: 'error' }, `Error: ${error.message}`));
}

// Session ---------------------------------------------------------------------------------

async function loadSession() {
  const response = await fetch('/console/session', { headers: headers() });
  if (response.status === 401) return false;
  session = await response.json();
  document.getElementById('who').textContent = session.auth ? `${session.name} (${session.role})` : '';
  return true;
}

function login() {
  const input = h('input', { type: 'password', name: 'token', placeholder: 'bearer token', autocomplete: 'off' });
  const message = h('p', { class: 'error' });
  show(h('div', { class: 'card login' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'This server wants a bearer token (one of BATON_AUTH_TOKENS).'),
    h('form', {
      onsubmit: async (event) => {
        event.preventDefault();
        sessionStorage.setItem('baton-token', input.value.trim());
        if (await loadSession()) route();
        else message.textContent = 'That token is not known here.';
      },
    }, input, ' ', h('button', { class: 'primary', type: 'submit' }, 'Sign in')),
    message));
}

// Graphs ----------------------------------------------------------------------------------

function stepKind(step, run) {
  if (step.workflow) return `child: ${idOf(step.workflow)}`;
  if (step.approval) return 'approval';
  if (step.wait_for) return `waits for "${step.wait_for.signal}"`;
  if (step.sleep || step.sleep_until) return 'sleep';
  const who = step.agent ? idOf(step.agent) : `capability ${step.capability}`;
  if (step.for_each) {
    const total = run && run.items_total;
    return total ? `${who} × ${run.items_succeeded || 0}/${total}` : `${who} for each`;
  }
  return who;
}

// Draws the workflow's steps with dagre; `runs` (step id -> StepRun) colors them.
function drawGraph(steps, runs = {}) {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: 'LR', nodesep: 24, ranksep: 56, marginx: 16, marginy: 44 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const step of steps) graph.setNode(step.id, { width: 170, height: 52 });
  for (const step of steps) for (const dep of step.depends_on || []) graph.setEdge(dep, step.id);
  dagre.layout(graph);
  const { width, height } = graph.graph();
  const root = svg('svg', { width: width + 40, height: height + 40, role: 'img' },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' },
      svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#9ca3af' }))));
  for (const edge of graph.edges()) {
    const points = graph.edge(edge).points;
    root.append(svg('path', { class: 'edge', d: `M${points.map((p) => `${p.x},${p.y}`).join(' L')}` }));
  }
  for (const step of steps) {
    if (!step.loop) continue; // a loop: a dashed edge back from its last step to its first
    const end = graph.node(step.id);
    const start = graph.node(step.loop.start || step.id);
    const top = Math.min(end.y, start.y) - 40;
    const from = end.x + (start === end ? 30 : 0);
    const to = start.x - (start === end ? 30 : 0);
    const d = `M${from},${end.y - 26} C${from},${top} ${to},${top} ${to},${start.y - 26}`;
    const run = runs[step.id];
    const label = `loop until ${step.loop.until}${run && run.iteration ? ` (iteration ${run.iteration})` : ''}`;
    root.append(svg('path', { class: 'loop', d }),
      svg('text', { class: 'loop-label', x: Math.min(from, to) - 40, y: top + 2 }, label));
  }
  for (const step of steps) {
    const node = graph.node(step.id);
    const run = runs[step.id];
    const state = run ? run.state || 'STATE_PENDING' : 'STATE_PENDING';
    const group = svg('g', { class: `step state-${state}`, 'data-step': step.id, 'data-state': state, transform: `translate(${node.x - 85},${node.y - 26})` },
      svg('rect', { width: 170, height: 52 }),
      svg('text', { x: 10, y: 20 }, step.id),
      svg('text', { class: 'kind', x: 10, y: 38 }, stepKind(step, run)));
    if (run && run.child_execution) {
      const link = svg('a', { href: `#/${run.child_execution}` }, group);
      root.append(link);
    } else root.append(group);
  }
  return h('div', { class: 'graph card' }, root);
}

// Executions ------------------------------------------------------------------------------

async function executionsPage(params) {
  const workflows = await api('GET', `/v1/workflows${query({ page_size: 1000 })}`);
  const form = h('form', { class: 'filters' });
  const field = (name, control) => h('label', {}, name, control);
  const workflow = h('select', { name: 'workflow' }, h('option', { value: '' }, 'any'),
    (workflows.workflows || []).map((w) => h('option', { value: idOf(w.name), selected: idOf(w.name) === params.get('workflow') }, idOf(w.name))));
  const state = h('select', { name: 'state' }, h('option', { value: '' }, 'any'),
    EXECUTION_STATES.map((s) => h('option', { value: s, selected: s === params.get('state') }, s.replace('STATE_', '').toLowerCase())));
  const label = h('input', { name: 'label', placeholder: 'key=value', value: params.get('label') || '' });
  const since = h('select', { name: 'since' },
    [['', 'any time'], ['3600', 'last hour'], ['86400', 'last day'], ['604800', 'last week']].map(([v, t]) => h('option', { value: v, selected: v === (params.get('since') || '') }, t)));
  form.append(field('Workflow', workflow), field('State', state), field('Label', label), field('Created', since),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [key, value] of new FormData(form)) if (value) next.set(key, value);
    location.hash = `#/executions?${next}`;
  });
  const table = h('table', { class: 'executions' });
  const pager = h('div', { class: 'pager' });
  show(h('h1', {}, 'Executions'), form, table, pager);

  const tokens = ['']; // page tokens of the pages seen, to go back
  let index = 0;
  const filters = {
    page_size: PAGE_SIZE,
    workflow: params.get('workflow') ? `workflows/${params.get('workflow')}` : '',
    state: params.get('state') || '',
  };
  const [key, value] = (params.get('label') || '').split('=');
  if (key && value !== undefined) filters[`labels.${key}`] = value;
  if (params.get('since')) filters.start_time = new Date(Date.now() - Number(params.get('since')) * 1000).toISOString();

  async function load() {
    const found = await api('GET', `/v1/executions${query({ ...filters, page_token: tokens[index] })}`);
    table.replaceChildren(
      h('tr', {}, ['Execution', 'Workflow', 'State', 'Created', 'Duration'].map((t) => h('th', {}, t))),
      ...(found.executions || []).map((e) => h('tr', { 'data-name': e.name },
        h('td', {}, h('a', { href: `#/${e.name}` }, idOf(e.name))),
        h('td', {}, idOf(e.workflow)),
        h('td', {}, badge(e.state)),
        h('td', {}, when(e.create_time)),
        h('td', {}, elapsed(e.start_time, e.end_time)))));
    if (!(found.executions || []).length) table.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No executions.')));
    tokens[index + 1] = found.next_page_token || '';
    pager.replaceChildren(
      h('button', { class: 'prev', disabled: index === 0, onclick: () => { index -= 1; load().catch(failure); } }, '← Previous'),
      h('span', { class: 'muted page-number' }, `page ${index + 1}`),
      h('button', { class: 'next', disabled: !found.next_page_token, onclick: () => { index += 1; load().catch(failure); } }, 'Next →'));
  }
  await load();
  // Live: the page shown is read again every two seconds.
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 2000);
  page.signal.addEventListener('abort', () => clearInterval(timer));
}

async function executionPage(id) {
  const name = `executions/${id}`;
  let execution = await api('GET', `/v1/${name}`);
  const workflow = await api('GET', `/v1/${execution.workflow}${query({ revision: execution.workflow_revision })}`);
  const steps = workflow.steps || [];
  const header = h('div');
  const graphHolder = h('div');
  const actions = h('div', { class: 'toolbar' });
  const timeline = h('div', { class: 'timeline card' });
  const log = h('table', { class: 'events' }, h('tr', {}, ['#', 'Time', 'Event', 'Step', 'Detail'].map((t) => h('th', {}, t))));
  const io = h('div', { class: 'grid2' });
  show(header, actions, graphHolder, h('h2', {}, 'Attempts'), timeline, h('h2', {}, 'Input and output'), io,
    h('h2', {}, 'Events'), log);

  function render() {
    const runs = Object.fromEntries((execution.steps || []).map((r) => [r.step_id, r]));
    header.replaceChildren(h('h1', {}, idOf(execution.name), ' ', h('span', { id: 'execution-state' }, badge(execution.state))),
      h('p', { class: 'muted' }, 'workflow ', h('a', { href: `#/workflows/${idOf(execution.workflow)}` }, idOf(execution.workflow)),
        ` revision ${execution.workflow_revision || 1} · created ${when(execution.create_time)}`,
        execution.parent ? [' · child of ', h('a', { href: `#/${execution.parent}` }, idOf(execution.parent))] : [],
        execution.error ? [' · ', h('span', { class: 'error' }, `${execution.error.type}: ${execution.error.message}`)] : []));
    graphHolder.replaceChildren(drawGraph(steps, runs));
    renderActions(runs);
    renderTimeline();
    io.replaceChildren(h('div', {}, h('h2', {}, 'Input'), pretty(execution.input)),
      h('div', {}, h('h2', {}, 'Output'), pretty(execution.output)));
  }

  function renderActions(runs) {
    const state = execution.state;
    const act = (label, verb, body, cls, ask) => h('button', {
      class: cls, 'data-action': verb,
      onclick: async () => {
        if (ask && !confirm(ask)) return;
        try { execution = await api('POST', `/v1/${name}:${verb}`, body); render(); } catch (error) { alert(error.message); }
      },
    }, label);
    const buttons = [];
    if (may('write')) {
      if (!TERMINAL.has(state)) buttons.push(act('Cancel', 'cancel', { reason: 'cancelled from the console' }, 'danger', 'Cancel this execution?'));
      if (state === 'STATE_RUNNING') buttons.push(act('Pause', 'pause', {}, ''));
      if (state === 'STATE_PAUSED') buttons.push(act('Resume', 'resume', {}, ''));
      if (TERMINAL.has(state) && state !== 'STATE_SUCCEEDED') buttons.push(act('Retry', 'retry', {}, 'primary'));
    }
    if (may('decide')) {
      for (const step of steps) {
        const run = runs[step.id];
        if (step.approval && run && run.state === 'STATE_WAITING') {
          buttons.push(act(`Approve ${step.id}`, 'approveStep', { step: step.id }, 'primary'));
          buttons.push(act(`Reject ${step.id}`, 'approveStep', { step: step.id, reject: true, reason: 'rejected from the console' }, 'danger'));
        }
      }
    }
    actions.replaceChildren(...buttons);
  }

  function renderTimeline() {
    const attempts = [];
    for (const run of execution.steps || []) {
      for (const attempt of run.attempts || []) attempts.push({ step: run.step_id, ...attempt });
    }
    const begin = Math.min(...attempts.map((a) => new Date(a.start_time).getTime()), Date.now());
    const finish = Math.max(...attempts.map((a) => (a.end_time ? new Date(a.end_time) : new Date()).getTime()), begin + 1);
    const span = finish - begin;
    const rows = (execution.steps || []).filter((r) => (r.attempts || []).length).map((run) => h('div', { class: 'row' },
      h('span', {}, run.step_id, (run.handoffs || []).length ? h('span', { class: 'muted' }, ` (${run.handoffs.length} handoff${run.handoffs.length > 1 ? 's' : ''})`) : ''),
      h('div', { class: 'lane' }, (run.attempts || []).map((a) => {
        const start = new Date(a.start_time).getTime();
        const end = a.end_time ? new Date(a.end_time).getTime() : Date.now();
        const kind = !a.end_time ? 'running' : a.error ? 'failed' : '';
        const title = `attempt ${a.attempt} · ${idOf(a.agent)} · ${elapsed(a.start_time, a.end_time)}${a.error ? ` · ${a.error.type}: ${a.error.message}` : ''}${a.fallback ? ' · fallback/handoff' : ''}`;
        return h('div', { class: `bar ${kind} ${a.fallback ? 'fallback' : ''}`, title, style: `left:${((start - begin) / span) * 100}%;width:${((end - start) / span) * 100}%` });
      }))));
    timeline.replaceChildren(...(rows.length ? rows : [h('p', { class: 'muted' }, 'No attempts yet.')]));
  }

  function addEvent(event) {
    const type = (event.type || '').replace('EVENT_TYPE_', '');
    const payload = Object.entries(event).find(([k]) => !['execution', 'sequence', 'time', 'type', 'step_id', 'attempt', 'iteration'].includes(k));
    log.append(h('tr', { 'data-sequence': event.sequence },
      h('td', { class: 'seq' }, event.sequence), h('td', {}, new Date(event.time).toLocaleTimeString()),
      h('td', { class: 'type' }, type), h('td', {}, event.step_id || ''),
      h('td', { class: 'detail' }, payload ? JSON.stringify(payload[1]) : '')));
  }

  render();
  let refreshing = null;
  const refresh = () => {
    if (refreshing) return;
    refreshing = setTimeout(async () => {
      refreshing = null;
      try { execution = await api('GET', `/v1/${name}`); render(); } catch (error) { /* the next event retries */ }
    }, 150);
  };
  follow(name, (event) => { addEvent(event); refresh(); }, page.signal);
}

// Workflows -------------------------------------------------------------------------------

async function workflowsPage() {
  const found = await api('GET', `/v1/workflows${query({ page_size: 1000 })}`);
  show(h('h1', {}, 'Workflows'), h('table', {},
    h('tr', {}, ['Workflow', 'Revision', 'Steps', 'State', 'Updated'].map((t) => h('th', {}, t))),
    (found.workflows || []).map((w) => h('tr', {},
      h('td', {}, h('a', { href: `#/workflows/${idOf(w.name)}` }, idOf(w.name)), w.display_name ? h('div', { class: 'muted' }, w.display_name) : ''),
      h('td', {}, w.revision), h('td', {}, (w.steps || []).length), h('td', {}, (w.state || '').replace('STATE_', '').toLowerCase()),
      h('td', {}, when(w.update_time))))));
}

function inputControl(name, schema, required) {
  const type = schema.type;
  let control;
  if (type === 'boolean') control = h('input', { type: 'checkbox', name });
  else if (type === 'integer' || type === 'number') control = h('input', { type: 'number', name, step: type === 'integer' ? '1' : 'any', required });
  else if (type === 'string' && schema.enum) control = h('select', { name }, schema.enum.map((v) => h('option', { value: v }, v)));
  else if (type === 'string') control = h('input', { type: 'text', name, required });
  else control = h('textarea', { name, placeholder: 'JSON', required });
  control.dataset.type = type || 'json';
  return h('label', {}, `${name}${required ? ' *' : ''}${schema.description ? ` — ${schema.description}` : ''}`, control);
}

async function workflowPage(id, params) {
  const latest = await api('GET', `/v1/workflows/${id}`);
  const revision = Number(params.get('revision') || latest.revision);
  const workflow = revision === Number(latest.revision) ? latest : await api('GET', `/v1/workflows/${id}${query({ revision })}`);
  const revisions = h('select', { onchange: (event) => { location.hash = `#/workflows/${id}?revision=${event.target.value}`; } },
    Array.from({ length: Number(latest.revision) }, (_, i) => i + 1).reverse().map((r) => h('option', { value: r, selected: r === revision }, `revision ${r}`)));
  const schema = workflow.input_schema || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const raw = h('textarea', { name: '__json', placeholder: '{"key": "value"}' });
  const message = h('p', { class: 'error' });
  const form = h('form', { class: 'card run-form' },
    h('h2', {}, 'Run it'),
    Object.keys(properties).length
      ? Object.entries(properties).map(([k, s]) => inputControl(k, s, required.has(k)))
      : h('label', {}, 'Input (JSON)', raw),
    h('div', { class: 'toolbar' }, h('button', { class: 'primary', type: 'submit', disabled: !may('write') }, 'Run'), message));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      let input = {};
      if (Object.keys(properties).length) {
        for (const control of form.querySelectorAll('[name]')) {
          const kind = control.dataset.type;
          if (kind === 'boolean') input[control.name] = control.checked;
          else if (control.value === '') continue;
          else if (kind === 'integer' || kind === 'number') input[control.name] = Number(control.value);
          else if (kind === 'json') input[control.name] = JSON.parse(control.value);
          else input[control.name] = control.value;
        }
      } else if (raw.value.trim()) input = JSON.parse(raw.value);
      const started = await api('POST', '/v1/executions', { workflow: `workflows/${id}`, workflow_revision: revision, input });
      location.hash = `#/${started.name}`;
    } catch (error) { message.textContent = error.message; }
  });
  show(h('h1', {}, id, ' ', revisions),
    h('p', { class: 'muted' }, workflow.description || workflow.display_name || '', ' · ', h('a', { href: `#/executions?workflow=${id}` }, 'executions'), ' · ', h('a', { href: `#/metrics?workflow=${id}` }, 'metrics')),
    drawGraph(workflow.steps || []), form, h('h2', {}, 'Definition'), pretty(workflow));
}

// Agents and tools ------------------------------------------------------------------------

function runtimeOf(resource) {
  for (const kind of ['python', 'worker', 'openai', 'http']) {
    if (resource[kind]) {
      const detail = resource[kind].entry_point || resource[kind].model || resource[kind].url || '';
      return `${kind}${detail ? `: ${detail}` : ''}`;
    }
  }
  if (resource.agent) return `agent: ${idOf(resource.agent)}`;
  if (resource.workflow) return `workflow: ${idOf(resource.workflow)}`;
  return '';
}

async function agentsPage() {
  const found = await api('GET', `/v1/agents${query({ page_size: 1000 })}`);
  show(h('h1', {}, 'Agents'), h('table', {},
    h('tr', {}, ['Agent', 'Runtime', 'Capabilities', 'Tools', 'State'].map((t) => h('th', {}, t))),
    (found.agents || []).map((a) => h('tr', {},
      h('td', {}, h('a', { href: `#/metrics?agent=${idOf(a.name)}` }, idOf(a.name)), a.description ? h('div', { class: 'muted' }, a.description) : ''),
      h('td', {}, runtimeOf(a)), h('td', {}, (a.capabilities || []).join(', ')),
      h('td', {}, (a.tools || []).map(idOf).join(', ')), h('td', {}, (a.state || '').replace('STATE_', '').toLowerCase())))));
}

async function toolsPage() {
  const found = await api('GET', `/v1/tools${query({ page_size: 1000 })}`);
  show(h('h1', {}, 'Tools'), h('table', {},
    h('tr', {}, ['Tool', 'Implementation', 'Parameters', 'Timeout'].map((t) => h('th', {}, t))),
    (found.tools || []).map((t) => h('tr', {},
      h('td', {}, idOf(t.name), t.description ? h('div', { class: 'muted' }, t.description) : ''),
      h('td', {}, runtimeOf(t)), h('td', {}, pretty(t.parameters || {})), h('td', {}, t.timeout || '')))));
}

async function handoffsPage() {
  const found = await api('GET', `/v1/handoffs${query({ page_size: 1000 })}`);
  show(h('h1', {}, 'Handoffs'), h('table', {},
    h('tr', {}, ['Handoff', 'From', 'To', 'Type', 'Conditions', 'Priority'].map((t) => h('th', {}, t))),
    (found.handoffs || []).map((x) => h('tr', {},
      h('td', {}, idOf(x.name), x.description ? h('div', { class: 'muted' }, x.description) : ''),
      h('td', {}, idOf(x.source_agent)), h('td', {}, idOf(x.target_agent)),
      h('td', {}, (x.type || '').replace('TYPE_', '').toLowerCase()),
      h('td', {}, (x.trigger_conditions || []).join(' and ')), h('td', {}, x.priority || 0)))));
}

async function schedulesPage() {
  const found = await api('GET', `/v1/schedules${query({ page_size: 1000 })}`);
  const act = (schedule, verb, label) => h('button', {
    'data-action': verb,
    onclick: async () => {
      try { await api('POST', `/v1/${schedule.name}:${verb}`, {}); route(); } catch (error) { alert(error.message); }
    },
  }, label);
  show(h('h1', {}, 'Schedules'), h('table', { class: 'schedules' },
    h('tr', {}, ['Schedule', 'Workflow', 'When', 'State', 'Next runs', 'Fired', 'Skipped', ''].map((t) => h('th', {}, t))),
    (found.schedules || []).map((x) => h('tr', { 'data-name': x.name },
      h('td', {}, idOf(x.name), x.last_error ? h('div', { class: 'error' }, x.last_error) : ''),
      h('td', {}, h('a', { href: `#/executions?workflow=${idOf(x.workflow)}` }, idOf(x.workflow))),
      h('td', {}, x.cron ? `cron ${x.cron}${x.time_zone ? ` (${x.time_zone})` : ''}` : `every ${x.interval}`),
      h('td', {}, badge(x.state), x.pause_reason ? h('div', { class: 'muted' }, x.pause_reason) : ''),
      h('td', {}, (x.next_run_times || []).slice(0, 3).map(when).join(', ')),
      h('td', {}, x.fired_count || 0), h('td', {}, x.skipped_count || 0),
      h('td', {}, may('write') ? (x.state === 'STATE_PAUSED' ? act(x, 'unpause', 'Unpause') : act(x, 'pause', 'Pause')) : '')))));
}

// Metrics ---------------------------------------------------------------------------------

async function metricsPage(params) {
  const workflows = await api('GET', `/v1/workflows${query({ page_size: 1000 })}`);
  const chosen = params.get('workflow') || idOf(((workflows.workflows || [])[0] || {}).name);
  const picker = h('select', { onchange: (event) => { location.hash = `#/metrics?workflow=${event.target.value}`; } },
    (workflows.workflows || []).map((w) => h('option', { value: idOf(w.name), selected: idOf(w.name) === chosen }, idOf(w.name))));
  const hours = 12;
  const rateCanvas = h('canvas', { id: 'success-rate' });
  const durationCanvas = h('canvas', { id: 'durations' });
  const agents = h('div');
  show(h('h1', {}, 'Metrics'), h('div', { class: 'toolbar' }, h('label', {}, 'Workflow', picker), h('span', { class: 'muted' }, `the last ${hours} hours, hour by hour`)),
    h('div', { class: 'charts' }, h('div', { class: 'card' }, rateCanvas), h('div', { class: 'card' }, durationCanvas)),
    h('h2', {}, 'Agents, the last 24 hours'), agents);
  if (chosen) {
    const now = Date.now();
    const windows = Array.from({ length: hours }, (_, i) => [now - (hours - i) * 3600e3, now - (hours - i - 1) * 3600e3]);
    const figures = await Promise.all(windows.map(([start, end]) => api('GET',
      `/v1/workflows/${chosen}/metrics${query({ start_time: new Date(start).toISOString(), end_time: new Date(end).toISOString() })}`)));
    const labels = windows.map(([, end]) => new Date(end).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    new Chart(rateCanvas, {
      type: 'line',
      data: { labels, datasets: [{ label: 'success rate (%)', data: figures.map((f) => (f.execution_count ? (f.success_rate || 0) * 100 : null)), borderColor: '#16a34a' },
        { label: 'executions', data: figures.map((f) => Number(f.execution_count || 0)), borderColor: '#3b82f6', yAxisID: 'count' }] },
      options: { animation: false, scales: { y: { min: 0, max: 100 }, count: { position: 'right', min: 0 } } },
    });
    new Chart(durationCanvas, {
      type: 'line',
      data: { labels, datasets: [['p50', '#3b82f6'], ['p95', '#d97706'], ['p99', '#dc2626']].map(([p, color]) => ({
        label: `${p} duration (s)`, borderColor: color, data: figures.map((f) => (f.execution_count ? seconds(f[`${p}_duration`]) : null)) })) },
      options: { animation: false, scales: { y: { min: 0 } } },
    });
  }
  const agentList = await api('GET', `/v1/agents${query({ page_size: 1000 })}`);
  const performance = await Promise.all((agentList.agents || []).map((a) => api('GET', `/v1/${a.name}/performance`).catch(() => null)));
  agents.replaceChildren(h('table', {},
    h('tr', {}, ['Agent', 'Attempts', 'Success rate', 'Mean', 'p95', 'Tokens'].map((t) => h('th', {}, t))),
    performance.filter(Boolean).map((p) => h('tr', {}, h('td', {}, idOf(p.agent)), h('td', {}, p.attempt_count || 0),
      h('td', {}, `${((p.success_rate || 0) * 100).toFixed(1)}%`), h('td', {}, p.average_duration || ''),
      h('td', {}, p.p95_duration || ''), h('td', {}, (p.usage && p.usage.total_tokens) || 0)))));
}

// Routing ---------------------------------------------------------------------------------

async function route() {
  page.abort();
  page = new AbortController();
  const [path, search] = (location.hash.slice(1) || '/executions').split('?');
  const params = new URLSearchParams(search || '');
  const parts = path.split('/').filter(Boolean);
  try {
    if (parts[0] === 'executions' && parts[1]) await executionPage(parts[1]);
    else if (parts[0] === 'workflows' && parts[1]) await workflowPage(parts[1], params);
    else if (parts[0] === 'workflows') await workflowsPage();
    else if (parts[0] === 'agents') await agentsPage();
    else if (parts[0] === 'tools') await toolsPage();
    else if (parts[0] === 'handoffs') await handoffsPage();
    else if (parts[0] === 'schedules') await schedulesPage();
    else if (parts[0] === 'metrics') await metricsPage(params);
    else await executionsPage(params);
  } catch (error) { failure(error); }
}

window.addEventListener('hashchange', route);
(async () => { if (await loadSession()) route(); else login(); })();
