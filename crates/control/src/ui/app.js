// The aviary console: one page over the control plane's own API. It reads a mesh's snapshot,
// then applies the watch stream's changes (server-sent events) and the stats stream's counts,
// so what it shows follows the mesh without a reload. Actions go through the same /v1 routes
// as the CLI, with the session cookie and the CSRF token the sign-in gave this page.
'use strict';

// What the snapshot calls each kind's list, the watch's kind name, and its name fields.
const KINDS = [
  ['virtualNodes', 'VirtualNode', null, 'virtualNodeName'],
  ['virtualRouters', 'VirtualRouter', null, 'virtualRouterName'],
  ['routes', 'Route', 'virtualRouterName', 'routeName'],
  ['virtualServices', 'VirtualService', null, 'virtualServiceName'],
  ['virtualGateways', 'VirtualGateway', null, 'virtualGatewayName'],
  ['gatewayRoutes', 'GatewayRoute', 'virtualGatewayName', 'gatewayRouteName'],
  ['workloads', 'Workload', null, 'name'],
  ['canaries', 'Canary', null, 'name'],
  ['endpoints', 'Endpoint', 'virtualNode', 'id'],
];
const ROUTE_TYPES = ['httpRoute', 'http2Route', 'grpcRoute', 'tcpRoute'];
const ENDED = ['succeeded', 'failed', 'aborted'];

const state = {
  session: null,
  mesh: null,
  revision: 0,
  objects: new Map(), // kind -> Map(key -> resource)
  stats: new Map(), // virtual node -> stats view of the last 10 s
  series: new Map(), // canary name -> {at, data}
  status: new Map(), // canary name -> the control plane's status of it (step i of n, waits)
  statusAt: 0,
  logs: new Map(), // workload -> {at, data | error}
  reasons: new Map(), // canary name -> abort reason being typed
  messages: new Map(), // canary name -> last action's answer
  pipelines: null, // the mesh's pipelines with their newest runs, read every 2 s
  deploys: [],
  pipelineError: '',
  pipelinesAt: 0,
  runLog: null, // the one stage log shown: {pipeline, run, stage, text, truncated, error}
  runMessages: new Map(), // `${pipeline}/${run}` -> last approval's answer
  watch: null,
  statsStream: null,
  renderQueued: false,
};

const $ = (id) => document.getElementById(id);

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : (many || one + 's')}`;
}

function fmtMs(ms) {
  if (ms == null) return '–';
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

function fmtPct(rate) {
  if (rate == null) return '–';
  const pct = rate * 100;
  return pct === 0 || pct === 100 ? `${pct}%` : `${pct.toFixed(pct < 1 ? 2 : 1)}%`;
}

function utc(millis) {
  return new Date(millis).toISOString().replace('T', ' ').replace('Z', '');
}

function secondsOf(text) {
  // Durations as the API writes them: 500ms, 10s, 2m, 1h, or a bare number of seconds.
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(text ?? '').trim());
  if (!m) return null;
  const n = Number(m[1]);
  return { ms: n / 1000, s: n, m: n * 60, h: n * 3600 }[m[2] || 's'];
}

// ---- talking to the control plane ----

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && state.session) headers['x-csrf-token'] = state.session.csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const message = (data && (data.message || data.Message)) || text || response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

function meshPath(rest) {
  return `/v1/meshes/${encodeURIComponent(state.mesh)}${rest}`;
}

// ---- the mesh's objects ----

function keyOf(parent, name) {
  return parent ? `${parent}/${name}` : name;
}

function all(kind) {
  return [...(state.objects.get(kind) || new Map()).values()];
}

function loadSnapshot(snapshot) {
  state.objects = new Map();
  for (const [list, kind, parentField, nameField] of KINDS) {
    const map = new Map();
    for (const item of snapshot[list] || []) {
      map.set(keyOf(parentField && item[parentField], item[nameField]), item);
    }
    state.objects.set(kind, map);
  }
  state.revision = snapshot.revision;
}

function applyChange(change) {
  if (change.kind === 'Mesh') {
    if (change.type === 'delete') showNotice(`mesh ${change.mesh} was deleted`);
    state.revision = Math.max(state.revision, change.revision);
    return;
  }
  let map = state.objects.get(change.kind);
  if (!map) {
    map = new Map();
    state.objects.set(change.kind, map);
  }
  const key = keyOf(change.parent, change.name);
  if (change.type === 'put' && change.resource) map.set(key, change.resource);
  else map.delete(key);
  state.revision = Math.max(state.revision, change.revision);
}

function closeStreams() {
  for (const stream of [state.watch, state.statsStream]) if (stream) stream.close();
  state.watch = null;
  state.statsStream = null;
}

async function openMesh(mesh) {
  closeStreams();
  state.mesh = mesh;
  state.series.clear();
  state.logs.clear();
  state.pipelines = null;
  state.deploys = [];
  state.pipelinesAt = 0;
  state.runLog = null;
  try {
    loadSnapshot(await api('GET', meshPath('/snapshot')));
  } catch (error) {
    return streamFailed(error);
  }
  hideNotice();
  render();
  watch();
  watchStats();
}

function watch() {
  const source = new EventSource(meshPath(`/watch?fromRevision=${state.revision}`));
  state.watch = source;
  const onChange = (event) => {
    applyChange(JSON.parse(event.data));
    queueRender();
  };
  source.addEventListener('put', onChange);
  source.addEventListener('delete', onChange);
  source.addEventListener('open', () => setLive(true));
  // History we missed is gone: start again from a new snapshot.
  source.addEventListener('relist', () => openMesh(state.mesh));
  source.onerror = () => {
    // Reconnect from where we are, not from where this stream started.
    source.close();
    setLive(false);
    setTimeout(() => { if (state.watch === source) reconnect(); }, 1000);
  };
}

async function reconnect() {
  try {
    state.session = await api('GET', '/ui/session');
  } catch (error) {
    if (error.status === 401 || error.status === 403) return signedOut(error.message);
  }
  openMesh(state.mesh);
}

function watchStats() {
  const source = new EventSource(meshPath('/stats/stream?window=10s'));
  state.statsStream = source;
  source.addEventListener('stats', (event) => {
    const view = JSON.parse(event.data);
    state.stats = new Map((view.nodes || []).map((n) => [n.virtualNode, n]));
    queueRender();
  });
}

function streamFailed(error) {
  if (error.status === 401) return signedOut(error.message);
  showNotice(`cannot read mesh ${state.mesh}: ${error.message}`);
  setLive(false);
  setTimeout(() => openMesh(state.mesh), 2000);
}

function setLive(live) {
  const badge = $('live');
  badge.textContent = live ? 'live' : 'reconnecting';
  badge.className = live ? 'live on' : 'live';
}

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
}

// ---- rendering ----

// Renders by patching what is there instead of replacing it: a button keeps being the same
// element across the renders of every second, so a click that spans one is not lost, and an
// input keeps its focus and what is typed into it.
function morph(target, html) {
  const template = document.createElement('template');
  template.innerHTML = html;
  patchChildren(target, template.content);
}

function patchChildren(parent, next) {
  const want = [...next.childNodes];
  want.forEach((node, i) => {
    const have = parent.childNodes[i];
    if (!have) {
      parent.appendChild(node.cloneNode(true));
    } else if (have.nodeType !== node.nodeType || have.nodeName !== node.nodeName) {
      parent.replaceChild(node.cloneNode(true), have);
    } else if (node.nodeType !== Node.ELEMENT_NODE) {
      if (have.nodeValue !== node.nodeValue) have.nodeValue = node.nodeValue;
    } else {
      for (const a of [...have.attributes]) if (!node.hasAttribute(a.name)) have.removeAttribute(a.name);
      for (const a of node.attributes) if (have.getAttribute(a.name) !== a.value) have.setAttribute(a.name, a.value);
      patchChildren(have, node);
    }
  });
  while (parent.childNodes.length > want.length) parent.removeChild(parent.lastChild);
}

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    render();
  });
}

function render() {
  renderMap();
  renderCanaries();
  renderPipelines();
  renderDeploys();
  renderWorkloads();
}

function routeTargets(route) {
  for (const type of ROUTE_TYPES) {
    const targets = route.spec?.[type]?.action?.weightedTargets;
    if (targets) return { type, targets, match: route.spec[type].match };
  }
  return { type: '', targets: [], match: null };
}

function matchText(type, match) {
  if (!match) return '';
  if (type === 'grpcRoute') return match.serviceName ? `${match.serviceName}/${match.methodName || '*'}` : '*';
  if (type === 'tcpRoute') return match.port ? `port ${match.port}` : 'tcp';
  if (match.prefix) return match.prefix;
  if (match.path) return match.path.exact || match.path.regex || '';
  return '';
}

function nodeStats(node) {
  const s = state.stats.get(node);
  if (!s || !s.requests) return '<span class="quiet">no traffic</span>';
  const ok = 1 - (s.errorRate || 0);
  const bad = ok < 0.99 ? ' bad' : '';
  return `<span class="num">${s.requestsPerSecond.toFixed(1)} req/s</span>
    <span class="num${bad}">${fmtPct(ok)} ok</span>
    <span class="num">p99 ${fmtMs(s.p99Ms)}</span>`;
}

function nodeBox(node, weight) {
  const endpoints = all('Endpoint').filter((e) => e.virtualNode === node);
  const healthy = endpoints.filter((e) => e.healthy !== false).length;
  const weightText = weight == null ? '' : `<span class="weight" data-weight="${weight}">${weight}%</span>`;
  return `<div class="node" data-node="${esc(node)}">
    <div class="node-name">${weightText}<b>${esc(node)}</b>
      <span class="quiet">${healthy}/${plural(endpoints.length, 'endpoint')} healthy</span></div>
    <div class="node-stats">${nodeStats(node)}</div>
  </div>`;
}

function renderMap() {
  const filter = $('filter').value.trim().toLowerCase();
  const routers = new Map(all('VirtualRouter').map((r) => [r.virtualRouterName, r]));
  const routes = all('Route');
  const gatewayRoutes = all('GatewayRoute');
  const services = all('VirtualService').sort((a, b) => a.virtualServiceName.localeCompare(b.virtualServiceName));

  morph($('gateways'), all('VirtualGateway').map((gw) => {
    const name = gw.virtualGatewayName;
    const ports = (gw.spec?.listeners || []).map((l) => `${l.portMapping?.protocol || ''} ${l.portMapping?.port || ''}`).join(', ');
    const rows = gatewayRoutes.filter((r) => r.virtualGatewayName === name).map((r) => {
      for (const type of ROUTE_TYPES) {
        const spec = r.spec?.[type];
        if (!spec) continue;
        const target = spec.action?.target?.virtualService?.virtualServiceName;
        return `<li><span class="match">${esc(matchText(type, spec.match) || '*')}</span> → <a href="#svc-${esc(target)}">${esc(target)}</a></li>`;
      }
      return '';
    }).join('');
    return `<div class="gateway"><b>gateway ${esc(name)}</b> <span class="quiet">${esc(ports)}</span>
      <ul>${rows || '<li class="quiet">no gateway routes</li>'}</ul></div>`;
  }).join(''));

  let shown = 0;
  const rows = services.map((svc) => {
    const name = svc.virtualServiceName;
    const provider = svc.spec?.provider || {};
    let middle = '';
    let nodes = '';
    let words = name;
    if (provider.virtualRouter) {
      const router = provider.virtualRouter.virtualRouterName;
      words += ` ${router}`;
      const own = routes.filter((r) => r.virtualRouterName === router);
      const weightOf = new Map();
      const routeRows = own.map((route) => {
        const { type, targets, match } = routeTargets(route);
        const total = targets.reduce((sum, t) => sum + (t.weight || 0), 0) || 1;
        const bar = targets.map((t) => {
          const pct = Math.round((t.weight || 0) * 100 / total);
          weightOf.set(t.virtualNode, (weightOf.get(t.virtualNode) || 0) + pct);
          words += ` ${t.virtualNode}`;
          return `<span class="share" title="${esc(t.virtualNode)} ${pct}%"
            data-route="${esc(router)}/${esc(route.routeName)}" data-node="${esc(t.virtualNode)}" data-weight="${pct}">${esc(t.virtualNode)} ${pct}%</span>`;
        }).join('');
        return `<div class="route"><div><b>${esc(route.routeName)}</b>
          <span class="quiet">${esc(type.replace('Route', ''))} ${esc(matchText(type, match))}</span></div>
          <div class="bar">${bar}</div></div>`;
      }).join('');
      middle = `<div class="router">router <b>${esc(router)}</b>${routers.has(router) ? '' : ' <span class="bad">missing</span>'}
        ${routeRows || '<div class="quiet">no routes</div>'}</div>`;
      nodes = [...weightOf.keys()].map((n) => nodeBox(n, own.length === 1 ? weightOf.get(n) : null)).join('');
    } else if (provider.virtualNode) {
      const node = provider.virtualNode.virtualNodeName;
      words += ` ${node}`;
      middle = '<div class="router quiet">served by one node, no router</div>';
      nodes = nodeBox(node, null);
    } else {
      middle = '<div class="router quiet">no provider</div>';
    }
    if (filter && !words.toLowerCase().includes(filter)) return '';
    shown += 1;
    return `<div class="service" id="svc-${esc(name)}">
      <div class="svc-name"><b>${esc(name)}</b></div>${middle}<div class="nodes">${nodes}</div></div>`;
  }).join('');
  morph($('services'), rows || '<p class="quiet">no virtual services match</p>');
  // The page's policy allows no inline styles: widths are set through the DOM instead.
  for (const share of document.querySelectorAll('#services .share')) {
    const weight = Number(share.dataset.weight);
    share.style.flexGrow = weight;
    share.classList.toggle('zero', weight === 0);
  }
  $('map-summary').textContent = `${plural(shown, 'service')} of ${services.length}, ${plural(all('VirtualNode').length, 'node')}`;
}

// Which step box is which: the steps before promotion ("step i of n", as the history and
// `aviary canary status` number them), then the promotion itself, which is not a step.
// A step as the state stores it: a weight, "gate", "match" (the A/B step) or {mirror: percent}.
// What a canary moves and where it stands: a route's weights, or a node's replicas (the
// canary's share of them rounded up, as the control plane counts them).
function drives(spec, weight) {
  const strategy = spec.strategy || {};
  if (strategy.type === 'replicas') {
    const canary = Math.ceil((weight * strategy.total) / 100);
    return `replicas of node ${esc(spec.stableNode)}: ${esc(strategy.stableWorkload)} ${strategy.total - canary}` +
      ` → ${esc(strategy.canaryWorkload)} ${canary}`;
  }
  return `route ${esc(spec.router)}/${esc(spec.route)}: ${esc(spec.stableNode)} ${100 - weight}%` +
    ` → ${esc(spec.canaryNode)} ${weight}%`;
}

function stepLabel(step) {
  if (step === 'gate') return 'gate';
  if (step === 'match') return 'A/B: matching requests';
  if (typeof step === 'object' && step !== null && 'mirror' in step) return `mirror ${step.mirror}%`;
  return `${step}%`;
}

function stepBoxes(canary) {
  const st = canary.state;
  const steps = st.steps || [];
  const boxes = steps.map((step, i) => ({
    label: stepLabel(step),
    number: `step ${i + 1} of ${steps.length}`,
  }));
  boxes.push({ label: 'promotion', number: 'then' });
  return boxes.map((box, i) => {
    let status = 'pending';
    if (st.phase === 'succeeded') status = 'passed';
    else if (i < st.step) status = 'passed';
    else if (i === st.step) status = ENDED.includes(st.phase) ? 'failed' : 'running';
    return { ...box, status, index: i };
  });
}

// The control plane's status when it is of this very state (it says what the step waits for:
// "waiting for traffic: 0 of 1 canary requests in this step", "analysis interval 3s left"); else what the page can tell.
function freshStatus(canary) {
  const status = state.status.get(canary.name);
  return status && status.phase === canary.state.phase && status.step === Math.min(canary.state.step + 1, status.steps)
    ? status : null;
}

function waitingFor(canary, now) {
  const status = freshStatus(canary);
  if (status) return status.waiting.map((w) => w.text).join('; ');
  const st = canary.state;
  if (st.phase === 'paused') return 'paused: waiting for a resume';
  if (st.phase === 'waitingForGate') return 'at a gate: waiting for a resume';
  if (st.phase !== 'progressing') return '';
  const strategy = canary.spec.strategy || {};
  const interval = secondsOf(strategy.interval ?? strategy.duration);
  if (interval == null) return '';
  const left = Math.max(0, (st.stepStartedAt + interval * 1000 - now) / 1000);
  return left > 0 ? `analysis interval ${left.toFixed(0)} s left` : 'waiting for the analysis to pass';
}

function chart(title, series, pick, unit) {
  const width = 300;
  const height = 80;
  const lines = [];
  let max = 0;
  for (const s of series) for (const p of s.points) { const v = pick(p); if (v != null) max = Math.max(max, v); }
  if (max === 0) max = 1;
  const count = Math.max(1, ...series.map((s) => s.points.length - 1));
  series.forEach((s, i) => {
    const pts = s.points.map((p, x) => {
      const v = pick(p);
      return v == null ? null : `${(x * width / count).toFixed(1)},${(height - v * height / max).toFixed(1)}`;
    }).filter(Boolean).join(' ');
    lines.push(`<polyline class="line l${i}" points="${pts}"/>`);
  });
  const last = series.map((s) => {
    const value = [...s.points].reverse().map(pick).find((v) => v != null);
    return value == null ? '–' : unit(value);
  });
  return `<figure class="chart"><figcaption>${esc(title)}
      <span class="l0">stable ${esc(last[0])}</span> <span class="l1">canary ${esc(last[1])}</span></figcaption>
    <svg viewBox="0 0 ${width} ${height}" preserveAspectRatio="none" role="img" aria-label="${esc(title)}">${lines.join('')}</svg></figure>`;
}

function charts(canary) {
  const entry = state.series.get(canary.name);
  if (!entry || !entry.data) return '<p class="quiet">charts load…</p>';
  const byNode = new Map(entry.data.nodes.map((n) => [n.virtualNode, n]));
  const series = [canary.spec.stableNode, canary.spec.canaryNode].map((n) => byNode.get(n) || { points: [] });
  return `<div class="charts">
    ${chart('requests/s', series, (p) => p.requestsPerSecond, (v) => v.toFixed(1))}
    ${chart('errors', series, (p) => p.errorRate, fmtPct)}
    ${chart('p99', series, (p) => p.p99Ms, fmtMs)}
  </div>`;
}

// The status of every canary, once a second while one runs (and once for ended ones).
function refreshStatus(canaries, now) {
  const stale = canaries.some((c) => !ENDED.includes(c.state.phase) || !freshStatus(c));
  if (!stale || state.statusLoading || now - state.statusAt < 1000) return;
  state.statusLoading = true;
  api('GET', meshPath('/canaries'))
    .then((list) => {
      state.status = new Map((list.canaries || []).map((c) => [c.name, c.status]));
    })
    .catch(() => {})
    .finally(() => {
      state.statusAt = Date.now();
      state.statusLoading = false;
      queueRender();
    });
}

function refreshSeries(canary, now) {
  const entry = state.series.get(canary.name);
  const active = !ENDED.includes(canary.state.phase);
  // Every 2 s while it runs, and once more after it ended, so the charts cover its whole life.
  if (entry && (entry.loading || entry.final || now - entry.at < 2000)) return;
  const started = canary.state.history?.[0]?.at ?? now;
  const seconds = Math.min(600, Math.max(10, Math.ceil((now - started) / 1000) + 5));
  const step = Math.max(1, Math.ceil(seconds / 120));
  const nodes = [canary.spec.stableNode, canary.spec.canaryNode].map(encodeURIComponent).join(',');
  state.series.set(canary.name, { ...(entry || {}), at: now, loading: true });
  api('GET', meshPath(`/stats/series?nodes=${nodes}&window=${seconds}s&step=${step}s`))
    .then((data) => state.series.set(canary.name, { at: Date.now(), data, final: !active }))
    .catch(() => state.series.set(canary.name, { ...(entry || {}), at: Date.now() }))
    .finally(queueRender);
}

function renderCanaries() {
  const now = Date.now();
  const canaries = all('Canary').sort((a, b) => {
    const ended = (c) => ENDED.includes(c.state.phase);
    if (ended(a) !== ended(b)) return ended(a) ? 1 : -1;
    const last = (c) => c.state.history?.[c.state.history.length - 1]?.at || 0;
    return last(b) - last(a);
  });
  const active = canaries.filter((c) => !ENDED.includes(c.state.phase)).length;
  $('canary-count').textContent = canaries.length ? `(${active} running)` : '';
  refreshStatus(canaries, now);
  const canAct = !!state.session?.canAct;
  morph($('canary-list'), canaries.map((canary) => {
    refreshSeries(canary, now);
    const st = canary.state;
    const name = canary.name;
    const ended = ENDED.includes(st.phase);
    const boxes = stepBoxes(canary);
    const steps = boxes.length - 1;
    const current = Math.min(st.step + 1, steps);
    const wait = waitingFor(canary, now);
    const flow = boxes.map((b) => {
      const detail = b.status === 'running' ? wait : (b.status === 'failed' ? st.reason : '');
      return `<li class="step ${b.status}" data-step="${b.index + 1}" data-status="${b.status}">
        <span class="step-n">${esc(b.number)}</span>
        <b>${esc(b.label)}</b><span class="step-state">${esc(b.status)}</span>
        ${detail ? `<span class="step-detail">${esc(detail)}</span>` : ''}</li>`;
    }).join('');
    const history = (st.history || []).map((h) => `<tr><td>${esc(utc(h.at))}</td><td>${esc(h.event)}</td>
      <td class="num">${h.canaryWeight}%</td><td>${esc(h.reason)}</td></tr>`).join('');
    const title = canAct ? '' : ' title="needs an operator token"';
    const button = (action, label, enabled) => `<button type="button" data-action="${action}" data-canary="${esc(name)}"
      ${enabled && canAct ? '' : 'disabled'}${title}>${label}</button>`;
    const paused = st.phase === 'paused' || st.phase === 'waitingForGate';
    const reasonId = `reason-${name}`;
    const summary = freshStatus(canary)?.progress || (ended
      ? (st.phase === 'succeeded' ? `promoted: all ${plural(steps, 'step')} passed` : `${st.phase} at step ${current} of ${steps}`)
      : `step ${current} of ${steps}`);
    const message = state.messages.get(name);
    return `<article class="canary ${esc(st.phase)}" data-canary="${esc(name)}" data-phase="${esc(st.phase)}">
      <h3>${esc(name)} <span class="phase">${esc(st.phase)}</span></h3>
      <p class="quiet">${drives(canary.spec, st.canaryWeight)} · ${esc(summary)}</p>
      ${st.reason ? `<p class="reason ${ended && st.phase !== 'succeeded' ? 'bad' : ''}">${esc(st.reason)}</p>` : ''}
      <ol class="flow">${flow}</ol>
      ${charts(canary)}
      <div class="actions">
        ${button('pause', 'Pause', !ended && !paused)}
        ${button('resume', 'Resume', !ended && paused)}
        ${button('promote', 'Promote', !ended)}
        <input id="${esc(reasonId)}" class="abort-reason" data-canary="${esc(name)}" placeholder="reason to abort"
          value="${esc(state.reasons.get(name) || '')}" ${!ended && canAct ? '' : 'disabled'}>
        ${button('abort', 'Abort', !ended)}
        ${message ? `<span class="action-message ${message.ok ? '' : 'bad'}" role="status">${esc(message.text)}</span>` : ''}
      </div>
      <details><summary>history (${plural((st.history || []).length, 'entry', 'entries')})</summary>
        <table><thead><tr><th>at (UTC)</th><th>event</th><th>canary</th><th>reason</th></tr></thead>
        <tbody>${history}</tbody></table></details>
    </article>`;
  }).join('') || '<p class="quiet">no canaries in this mesh (aviary canary start, or aviary deploy)</p>');
}

// ---- pipelines and deploys ----

// They are kept beside the mesh, not in it (a run changes with every stage and no proxy needs
// it), so the watch does not carry them: the page reads them every 2 s.
function refreshPipelines(now) {
  if (state.pipelinesLoading || now - state.pipelinesAt < 2000) return;
  state.pipelinesLoading = true;
  const mesh = state.mesh;
  Promise.all([api('GET', meshPath('/pipelines')), api('GET', meshPath('/deploys'))])
    .then(([pipelines, deploys]) => {
      if (mesh !== state.mesh) return;
      state.pipelines = pipelines.pipelines || [];
      state.deploys = deploys.deploys || [];
      state.pipelineError = '';
    })
    .catch((error) => { state.pipelineError = error.message; })
    .finally(() => {
      state.pipelinesAt = Date.now();
      state.pipelinesLoading = false;
      refreshRunLog();
      queueRender();
    });
}

function findRun(pipeline, number) {
  const found = (state.pipelines || []).find((p) => p.name === pipeline);
  return found?.runs.find((r) => r.number === number);
}

// The open stage log, read again while its run goes on.
function refreshRunLog() {
  const open = state.runLog;
  if (!open || open.loading || open.final) return;
  open.loading = true;
  const ended = ['succeeded', 'failed', 'superseded'].includes(findRun(open.pipeline, open.run)?.phase);
  const path = `/pipelines/${encodeURIComponent(open.pipeline)}/runs/${open.run}/logs?stage=${open.stage}`;
  api('GET', meshPath(path))
    .then((log) => Object.assign(open, { text: log.text, truncated: log.truncated, error: '', final: ended }))
    .catch((error) => { open.error = error.message; })
    .finally(() => {
      open.loading = false;
      queueRender();
    });
}

function toggleRunLog(pipeline, run, stage) {
  const open = state.runLog;
  if (open && open.pipeline === pipeline && open.run === run && open.stage === stage) {
    state.runLog = null;
  } else {
    state.runLog = { pipeline, run, stage };
    refreshRunLog();
  }
  queueRender();
}

function took(stage, now) {
  if (!stage.startedAt) return '';
  const ms = (stage.endedAt || now) - stage.startedAt;
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

function runRow(pipeline, run, now, canAct) {
  const key = `${pipeline.name}/${run.number}`;
  const chips = run.stages.map((stage) => {
    const detail = stage.detail ? ` title="${esc(stage.detail)}"` : '';
    return `<li><button type="button" class="stage ${esc(stage.state)}" data-log-pipeline="${esc(pipeline.name)}"
        data-log-run="${run.number}" data-log-stage="${esc(stage.name)}" data-state="${esc(stage.state)}"${detail}>
      <b>${esc(stage.name)}</b><span class="stage-state">${esc(stage.state)}</span>
      <span class="quiet">${esc(took(stage, now))}</span></button></li>`;
  }).join('<li class="arrow" aria-hidden="true">→</li>');
  const waiting = run.stages.some((s) => s.name === 'approval' && s.state === 'waiting');
  const title = canAct ? '' : ' title="needs an operator token"';
  const approve = (approve, label) => `<button type="button" data-approve="${approve}" data-run-key="${esc(key)}"
      ${canAct ? '' : 'disabled'}${title}>${label}</button>`;
  const message = state.runMessages.get(key);
  const open = state.runLog;
  let log = '';
  if (open && open.pipeline === pipeline.name && open.run === run.number) {
    let text = open.error || open.text;
    if (text == null) text = 'loading…';
    else if (text === '') text = '(no output)';
    log = `<div class="run-log"><span class="quiet">${esc(open.stage)} log of run ${run.number}${open.truncated ? ' (its tail)' : ''}</span>
      <pre class="log" data-log="${esc(key)}/${esc(open.stage)}">${esc(text)}</pre></div>`;
  }
  const bad = run.phase === 'failed' ? ' bad' : '';
  const version = run.version ? ` · version ${run.version}` : '';
  return `<div class="run ${esc(run.phase)}" data-run="${run.number}" data-phase="${esc(run.phase)}">
    <div class="run-head"><b>run ${run.number}</b> <code>${esc(run.commit.slice(0, 8))}</code>
      <span class="quiet">${esc(run.trigger)} · ${esc(utc(run.createdAt))}${esc(version)}</span>
      <span class="phase${bad}">${esc(run.phase)}</span></div>
    <ol class="stages">${chips}</ol>
    ${run.reason ? `<p class="reason${bad}">${esc(run.reason)}</p>` : ''}
    ${waiting ? `<div class="actions">waiting for approval ${approve(true, 'Approve')} ${approve(false, 'Reject')}
      ${message ? `<span class="action-message ${message.ok ? '' : 'bad'}" role="status">${esc(message.text)}</span>` : ''}</div>` : ''}
    ${log}
  </div>`;
}

function renderPipelines() {
  const now = Date.now();
  refreshPipelines(now);
  const pipelines = state.pipelines;
  $('pipeline-count').textContent = pipelines?.length ? `(${pipelines.length})` : '';
  if (pipelines == null) {
    morph($('pipeline-list'), `<p class="quiet">${esc(state.pipelineError || 'loading…')}</p>`);
    return;
  }
  const canAct = !!state.session?.canAct;
  const list = [...pipelines].sort((a, b) => a.name.localeCompare(b.name)).map((p) => {
    const spec = p.spec;
    const serving = p.version ? `version ${p.version} serves (run ${p.servingRun ?? '–'})` : 'nothing rolled out yet';
    const poll = spec.pollSeconds ? `polls every ${spec.pollSeconds} s` : 'runs on trigger only';
    return `<article class="pipeline" data-pipeline="${esc(p.name)}">
      <h3>${esc(p.name)} <span class="quiet">${esc(spec.repository)}@${esc(spec.branch)}</span></h3>
      <p class="quiet">${esc(serving)} · ${esc(poll)} · build <code>${esc(spec.build.command)}</code>${spec.approval ? ' · approval before deploy' : ''}</p>
      ${p.runs.map((run) => runRow(p, run, now, canAct)).join('') || '<p class="quiet">no runs yet</p>'}
    </article>`;
  }).join('');
  const error = state.pipelineError ? `<p class="error">${esc(state.pipelineError)}</p>` : '';
  morph($('pipeline-list'), error + (list || '<p class="quiet">no pipelines in this mesh (aviary pipeline create)</p>'));
}

function renderDeploys() {
  const deploys = [...state.deploys].sort((a, b) => b.createdAt - a.createdAt).slice(0, 10);
  morph($('deploy-list'), deploys.map((d) => {
    const bad = ['failed', 'rolledBack'].includes(d.phase) ? ' bad' : '';
    const origin = d.origin ? ` · from pipeline ${d.origin.pipeline} run ${d.origin.run}` : '';
    const from = d.stableNode ? `${d.stableNode} → ` : '';
    const last = d.events?.[d.events.length - 1]?.text;
    return `<div class="deploy ${esc(d.phase)}" data-deploy="${esc(d.name)}" data-phase="${esc(d.phase)}">
      <div><b>${esc(d.name)}</b> <span class="phase${bad}">${esc(d.phase)}</span>
        <span class="quiet">service ${esc(d.service)}: ${esc(from)}${esc(d.node)} · ${esc(utc(d.createdAt))}${esc(origin)}</span></div>
      ${d.reason ? `<p class="reason${bad}">${esc(d.reason)}</p>` : (last ? `<p class="quiet">${esc(last)}</p>` : '')}
    </div>`;
  }).join('') || '<p class="quiet">no deploys in this mesh (aviary deploy deploy.json, or a pipeline run)</p>');
}

async function approveRun(key, approve) {
  const at = key.lastIndexOf('/');
  const pipeline = key.slice(0, at);
  const run = key.slice(at + 1);
  const body = approve ? { approve: true } : { approve: false, reason: 'rejected from the console' };
  try {
    const answer = await api('POST', meshPath(`/pipelines/${encodeURIComponent(pipeline)}/runs/${run}/approve`), body);
    state.runMessages.set(key, { ok: true, text: `${approve ? 'approved' : 'rejected'}: ${answer.phase}` });
    state.pipelinesAt = 0;
  } catch (error) {
    state.runMessages.set(key, { ok: false, text: `refused: ${error.message}` });
  }
  queueRender();
}

function renderWorkloads() {
  const endpoints = all('Endpoint');
  const workloads = all('Workload').sort((a, b) => a.name.localeCompare(b.name));
  const open = new Set([...document.querySelectorAll('#workload-list details[open]')].map((d) => d.dataset.workload));
  morph($('workload-list'), workloads.map((w) => {
    const mine = endpoints.filter((e) => e.virtualNode === w.virtualNode
      && (e.id === w.name || e.id.startsWith(`${w.name}-`)));
    const healthy = mine.filter((e) => e.healthy !== false).length;
    const rows = mine.sort((a, b) => a.id.localeCompare(b.id)).map((e) => `<li>
      <span class="${e.healthy === false ? 'bad' : 'good'}">${e.healthy === false ? 'unhealthy' : 'healthy'}</span>
      ${esc(e.id)} <span class="quiet">${esc(e.address)}:${e.port}${e.meshTls ? ' mTLS' : ''}</span></li>`).join('');
    const logs = state.logs.get(w.name);
    let logText = 'loading…';
    if (logs?.error) logText = logs.error;
    else if (logs?.data) {
      logText = logs.data.replicas.map((r) => r.lines.map((l) => `${w.name}-${r.replica} | ${l}`).join('\n')).join('\n') || '(no output yet)';
    }
    const hosts = w.hosts?.length ? ` on ${w.hosts.join(', ')}` : '';
    return `<div class="workload" data-workload="${esc(w.name)}">
      <div><b>${esc(w.name)}</b> → node ${esc(w.virtualNode)}
        <span class="${healthy < w.replicas ? 'bad' : 'good'}">${healthy}/${plural(w.replicas, 'replica')} healthy</span>${esc(hosts)}</div>
      <code class="command">${esc((w.command || []).join(' '))}</code>
      <ul class="replicas">${rows || '<li class="quiet">no endpoints registered yet</li>'}</ul>
      <details data-workload="${esc(w.name)}" ${open.has(w.name) ? 'open' : ''}><summary>last lines of its log</summary>
        <pre class="log">${esc(logText)}</pre></details>
    </div>`;
  }).join('') || '<p class="quiet">no workloads in this mesh</p>');
}

function refreshLogs() {
  for (const details of document.querySelectorAll('#workload-list details[open]')) {
    const name = details.dataset.workload;
    api('GET', meshPath(`/workloads/${encodeURIComponent(name)}/logs?lines=20`))
      .then((data) => state.logs.set(name, { data }))
      .catch((error) => state.logs.set(name, { error: error.message }))
      .finally(queueRender);
  }
}

// ---- actions ----

async function act(name, action) {
  const body = action === 'abort' ? { reason: state.reasons.get(name) || 'aborted from the console' } : {};
  try {
    const canary = await api('POST', meshPath(`/canaries/${encodeURIComponent(name)}/${action}`), body);
    state.messages.set(name, { ok: true, text: `${action}: ${canary.state.phase}` });
    state.objects.get('Canary')?.set(name, canary);
  } catch (error) {
    state.messages.set(name, { ok: false, text: `${action} refused: ${error.message}` });
  }
  queueRender();
}

// ---- sign-in and start ----

function signedOut(message) {
  closeStreams();
  state.session = null;
  $('console').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  document.querySelector('.mesh-pick').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message || '';
  setLive(false);
}

async function signedIn(session) {
  state.session = session;
  $('sign-in').hidden = true;
  $('console').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = `${session.name} (${session.role})`;
  let meshes = [];
  try {
    const answer = await api('GET', '/v20190125/meshes');
    meshes = (answer.meshes || []).map((m) => m.meshName).sort();
  } catch (error) {
    return showNotice(`cannot list meshes: ${error.message}`);
  }
  const select = $('mesh');
  select.innerHTML = meshes.map((m) => `<option>${esc(m)}</option>`).join('');
  document.querySelector('.mesh-pick').hidden = meshes.length === 0;
  if (!meshes.length) return showNotice('there are no meshes yet (aviary apply -f mesh.yaml)');
  const wanted = new URLSearchParams(location.search).get('mesh');
  const mesh = meshes.includes(wanted) ? wanted : meshes[0];
  select.value = mesh;
  openMesh(mesh);
}

function start() {
  $('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    try {
      const session = await api('POST', '/ui/session', { token });
      $('token').value = '';
      signedIn(session);
    } catch (error) {
      $('sign-in-error').textContent = error.message;
    }
  });
  $('sign-out').addEventListener('click', async () => {
    await api('DELETE', '/ui/session').catch(() => {});
    signedOut('signed out');
  });
  $('mesh').addEventListener('change', (event) => {
    const url = new URL(location.href);
    url.searchParams.set('mesh', event.target.value);
    history.replaceState(null, '', url);
    openMesh(event.target.value);
  });
  $('filter').addEventListener('input', queueRender);
  document.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    if (button && !button.disabled) act(button.dataset.canary, button.dataset.action);
    const chip = event.target.closest('button[data-log-stage]');
    if (chip) toggleRunLog(chip.dataset.logPipeline, Number(chip.dataset.logRun), chip.dataset.logStage);
    const verdict = event.target.closest('button[data-approve]');
    if (verdict && !verdict.disabled) approveRun(verdict.dataset.runKey, verdict.dataset.approve === 'true');
  });
  document.addEventListener('input', (event) => {
    if (event.target.classList.contains('abort-reason')) state.reasons.set(event.target.dataset.canary, event.target.value);
  });
  document.addEventListener('toggle', (event) => {
    if (event.target.matches?.('#workload-list details') && event.target.open) refreshLogs();
  }, true);
  // Time left in a step ticks even when nothing else changes; logs are read while shown.
  setInterval(queueRender, 1000);
  setInterval(refreshLogs, 3000);
  api('GET', '/ui/session').then(signedIn, () => signedOut(''));
}

start();
