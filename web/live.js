// The live view: polls the JSON API of the process that serves it
// (docs/live-view.md) and draws the results table, the call tree as an
// icicle and the recent timeline. No dependencies: plain DOM and canvas.
'use strict';

const $ = (id) => document.getElementById(id);
// What the page shows, for tests and the curious (read-only).
const live = (window.__live = { refreshes: 0, rows: 0, flameNodes: 0, timelineBars: 0, timelineArrows: 0 });

const REFRESH_MS = 500; // results and switches
const SLOW_MS = 1000; // call tree and timeline
const TIMELINE_LIMIT = 10000; // events per thread: more than a canvas row can show
let profiler = null; // the selected profiler's name
let state = null; // its entry of /api/profilers
let sort = { key: 'total_time_ns', dir: -1 };
let lastHits = new Map();
let lastSlow = 0;
let seenTracks = new Map(); // track -> {track, name, enabled} from the last results
let shownRows = null; // the last rows fetched, re-rendered at once when the filter or the order changes

// ------------------------------------------------------------ helpers

function fmtTime(ns) {
  if (ns === undefined || ns === null) return '';
  const a = Math.abs(ns);
  if (a < 1e3) return `${ns.toFixed(0)} ns`;
  if (a < 1e6) return `${(ns / 1e3).toFixed(2)} µs`;
  if (a < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(3)} s`;
}
function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
function query(extra) {
  const p = new URLSearchParams(extra || {});
  if (profiler) p.set('profiler', profiler);
  const s = p.toString();
  return s ? `?${s}` : '';
}
async function getJSON(path, extra) {
  const r = await fetch(path + query(extra), { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}
async function control(path, extra) {
  const r = await fetch(path + query(extra), { method: 'POST', headers: { 'X-Stichotrope-Control': '1' } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `${path}: ${r.status}`);
  state = body;
  renderState();
  tick(true);
}
function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h % 360;
}
function sizeCanvas(canvas, height) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 800;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, height);
  return { g, w, h: height };
}
const tooltip = $('tooltip');
function showTip(ev, text) {
  if (!text) {
    tooltip.hidden = true;
    return;
  }
  tooltip.textContent = text;
  tooltip.hidden = false;
  tooltip.style.left = `${ev.clientX + 12}px`;
  tooltip.style.top = `${ev.clientY + 12}px`;
}

// ------------------------------------------------------------ switches

// The switches: tracks that are named or off (from /api/profilers) and the
// tracks that have blocks (from the results already fetched).
function allTracks() {
  const tracks = new Map(seenTracks);
  for (const t of state.tracks) tracks.set(t.track, t);
  return [...tracks.values()].sort((a, b) => a.track - b.track);
}

function renderState() {
  if (!state) return;
  const trackList = allTracks();
  $('profiler-name').textContent = state.name;
  const st = $('status');
  st.textContent = state.started ? 'recording' : 'stopped';
  st.className = `status ${state.started ? 'running' : 'stopped'}`;
  $('timeline-toggle').textContent = state.timeline ? 'Timeline off' : 'Timeline on';
  $('download-json').href = `/api/results${query({ download: '1' })}`;
  $('download-trace').href = `/api/trace${query()}`;
  const box = $('tracks');
  const have = new Set([...box.querySelectorAll('input')].map((i) => i.dataset.track));
  const want = trackList.map((t) => String(t.track));
  if (have.size !== want.length || want.some((t) => !have.has(t))) {
    box.innerHTML = trackList
      .map(
        (t) =>
          `<label data-track="${t.track}"><input type="checkbox" data-track="${t.track}">` +
          `${t.track}${t.name ? ` · ${esc(t.name)}` : ''}</label>`,
      )
      .join('');
    for (const input of box.querySelectorAll('input'))
      input.addEventListener('change', () =>
        control('/api/track', { track: input.dataset.track, enabled: input.checked ? '1' : '0' }).catch(alert),
      );
  }
  for (const t of trackList) {
    const input = box.querySelector(`input[data-track="${t.track}"]`);
    input.checked = t.enabled;
    input.parentElement.classList.toggle('off', !t.enabled);
  }
  const sel = $('track-filter');
  const chosen = sel.value;
  const options = ['<option value="">all</option>']
    .concat(trackList.map((t) => `<option value="${t.track}">${t.track}${t.name ? ` · ${esc(t.name)}` : ''}</option>`))
    .join('');
  if (sel.dataset.options !== options) {
    sel.innerHTML = options;
    sel.dataset.options = options;
    sel.value = chosen;
  }
}

// ------------------------------------------------------------ table

const columns = [
  { key: 'thread', label: 'Thread', perThread: true },
  { key: 'track', label: 'Track' },
  { key: 'name', label: 'Block' },
  { key: 'hit_count', label: 'Hits', count: true },
  { key: 'total_time_ns', label: 'Total' },
  { key: 'avg_time_ns', label: 'Mean' },
  { key: 'min_time_ns', label: 'Min' },
  { key: 'max_time_ns', label: 'Max' },
  { key: 'p50_ns', label: 'p50' },
  { key: 'p99_ns', label: 'p99' },
  { key: 'self_time_ns', label: 'Self' },
  { key: 'active_time_ns', label: 'Active' },
  { key: 'suspended_time_ns', label: 'Suspended' },
  { key: 'suspensions', label: 'Susp.', count: true },
  { key: 'waited_on', label: 'Waited on' },
];

/// A block's main wait ("server.cpp:88 asio::…::async_wait 97 %") and all of
/// them, one per line, for the cell's tooltip (docs/coroutines.md, "Waits").
function waitsOf(b) {
  const waits = b.waits || [];
  const byId = new Map(waits.map((w) => [w.site_id, w]));
  const path = (w) => {
    const names = [w.name];
    for (let p = w.parent_site_id, guard = 0; p !== null && byId.has(p) && guard < 64; guard++) {
      names.unshift(byId.get(p).name);
      p = byId.get(p).parent_site_id;
    }
    return names.join(' > ');
  };
  const label = (w) => `${path(w)}${w.awaited && w.awaited !== w.name ? ' ' + w.awaited : ''}`;
  const pct = (w) => (b.suspended_time_ns > 0 ? ` ${((100 * w.total_time_ns) / b.suspended_time_ns).toFixed(0)} %` : '');
  const leaves = waits.filter((w) => !waits.some((x) => x.parent_site_id === w.site_id));
  const top = leaves.reduce((a, w) => (!a || w.total_time_ns > a.total_time_ns ? w : a), null);
  return {
    main: top ? label(top) + pct(top) : '',
    all: waits.map((w) => `${label(w)}: ${w.count} × ${fmtTime(w.total_time_ns / Math.max(w.count, 1))}${pct(w)}`).join('\n'),
  };
}

function rowsOf(results, thread) {
  const rows = [];
  for (const t of results.tracks)
    for (const b of t.blocks) {
      if (!b.hit_count && !b.abandoned) continue;
      rows.push({
        ...b,
        track: t.track_idx,
        trackLabel: t.track_name ? `${t.track_idx} · ${t.track_name}` : String(t.track_idx),
        trackEnabled: t.enabled,
        thread: thread || '',
        site: `${b.file}:${b.line}`,
        waited_on: waitsOf(b).main,
        waits_tip: waitsOf(b).all,
      });
    }
  return rows;
}

function renderTable(rows, perThread) {
  shownRows = { rows, perThread };
  const cols = columns.filter((c) => perThread || !c.perThread);
  const head = $('results-head');
  const headHtml = cols
    .map((c) => {
      const cls = sort.key === c.key ? (sort.dir > 0 ? 'sorted-asc' : 'sorted-desc') : '';
      return `<th data-key="${c.key}" class="${cls}">${c.label}</th>`;
    })
    .join('');
  if (head.dataset.html !== headHtml) {
    head.innerHTML = headHtml;
    head.dataset.html = headHtml;
  }
  const filter = $('filter').value.trim().toLowerCase();
  const track = $('track-filter').value;
  const shown = rows.filter((r) => (!filter || r.name.toLowerCase().includes(filter)) && (track === '' || String(r.track) === track));
  const key = sort.key === 'track' ? 'track' : sort.key;
  shown.sort((a, b) => {
    const x = a[key];
    const y = b[key];
    const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return c * sort.dir || a.site.localeCompare(b.site);
  });
  const seen = new Map();
  $('results-body').innerHTML = shown
    .map((r) => {
      const id = `${r.thread}|${r.track}|${r.name}|${r.site}`;
      const grew = lastHits.has(id) && lastHits.get(id) < r.hit_count;
      seen.set(id, r.hit_count);
      const cells = cols.map((c) => {
        if (c.key === 'thread') return `<td>${esc(r.thread)}</td>`;
        if (c.key === 'track') return `<td>${esc(r.trackLabel)}</td>`;
        if (c.key === 'name') return `<td title="${esc(r.site)} ${esc(r.function || '')}">${esc(r.name)}</td>`;
        if (c.key === 'waited_on') return `<td class="waits" title="${esc(r.waits_tip)}">${esc(r.waited_on)}</td>`;
        if (c.count) return `<td class="${c.key === 'hit_count' && grew ? 'grew' : ''}">${r[c.key]}</td>`;
        return `<td>${fmtTime(r[c.key])}</td>`;
      });
      return (
        `<tr data-block="${esc(r.name)}" data-track="${r.track}" data-site="${esc(r.site)}" data-hits="${r.hit_count}"` +
        ` data-thread="${esc(r.thread)}" class="${r.trackEnabled ? '' : 'disabled'}">${cells.join('')}</tr>`
      );
    })
    .join('');
  lastHits = seen;
  live.rows = shown.length;
  $('row-count').textContent = `${shown.length} of ${rows.length} rows`;
}

$('results-head').addEventListener('click', (ev) => {
  const th = ev.target.closest('th');
  if (!th) return;
  const key = th.dataset.key;
  sort = sort.key === key ? { key, dir: -sort.dir } : { key, dir: key === 'name' || key === 'track' || key === 'thread' ? 1 : -1 };
  if (shownRows) renderTable(shownRows.rows, shownRows.perThread);
});

// ------------------------------------------------------------ icicle

let flameRects = [];
function renderFlame(text, weight) {
  const root = { name: 'all', value: 0, children: new Map() };
  for (const line of text.split('\n')) {
    const m = /^(.*) (\d+(?:\.\d+)?)$/.exec(line);
    if (!m) continue;
    const v = Number(m[2]);
    root.value += v;
    let node = root;
    for (const frame of m[1].split(';')) {
      if (!node.children.has(frame)) node.children.set(frame, { name: frame, value: 0, children: new Map() });
      node = node.children.get(frame);
      node.value += v;
    }
  }
  let depth = 0;
  (function measure(n, d) {
    depth = Math.max(depth, d);
    for (const c of n.children.values()) measure(c, d + 1);
  })(root, 0);
  const ROW = 20;
  const canvas = $('flame');
  const { g, w } = sizeCanvas(canvas, Math.max(60, (depth + 1) * ROW + 4));
  flameRects = [];
  if (root.value <= 0) {
    g.fillStyle = '#6b7280';
    g.fillText('no samples yet', 8, 20);
    live.flameNodes = 0;
    return;
  }
  const hatch = g.createPattern(stripes(), 'repeat');
  const scale = w / root.value;
  (function draw(n, x, d) {
    const width = n.value * scale;
    if (width < 0.5) return;
    const y = d * ROW;
    g.fillStyle = d === 0 ? '#d9dee8' : `hsl(${hue(n.name)}, 55%, 72%)`;
    g.fillRect(x, y, Math.max(width - 1, 0.5), ROW - 2);
    // The time a block waited is its [wait] frames (the await it waited on),
    // hatched; the rest of a block is on a CPU or in its children.
    const frac = d > 0 && n.name.startsWith('[wait] ') ? 1 : 0;
    if (frac > 0) {
      g.globalAlpha = 0.65; // the block's colour shows through
      g.fillStyle = hatch;
      g.fillRect(x + width * (1 - frac), y, Math.max(width * frac - 1, 0.5), ROW - 2);
      g.globalAlpha = 1;
    }
    if (width > 40) {
      g.fillStyle = '#1d2330';
      g.save();
      g.beginPath();
      g.rect(x, y, width - 2, ROW);
      g.clip();
      g.fillText(`${n.name} ${fmtTime(n.value)}`, x + 4, y + 13);
      g.restore();
    }
    flameRects.push({ x, y, w: width, h: ROW, n, frac });
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => b.value - a.value)) {
      draw(c, cx, d + 1);
      cx += c.value * scale;
    }
  })(root, 0, 0);
  live.flameNodes = flameRects.length - 1;
  live.waitFrames = flameRects.filter((f) => f.n.name.startsWith('[wait] ')).length;
  $('flame-info').textContent = `${live.flameNodes} frames, ${fmtTime(root.value)} ${weight === 'self' ? 'wall' : 'active'} in all`;
  canvas.onmousemove = (ev) => {
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const y = ev.clientY - r.top;
    const hit = flameRects.find((f) => x >= f.x && x < f.x + f.w && y >= f.y && y < f.y + f.h);
    showTip(
      ev,
      hit &&
        `${hit.n.name}\n${fmtTime(hit.n.value)} (${((100 * hit.n.value) / root.value).toFixed(1)} %)` +
          (hit.frac ? '\ntime the block waited on this await (suspended)' : ''),
    );
  };
  canvas.onmouseleave = () => showTip(null, null);
}
function stripes() {
  const c = document.createElement('canvas');
  c.width = c.height = 6;
  const g = c.getContext('2d');
  g.fillStyle = '#e7ebf2';
  g.fillRect(0, 0, 6, 6);
  g.strokeStyle = '#8792a8';
  g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(0, 6);
  g.lineTo(6, 0);
  g.stroke();
  return c;
}

// ------------------------------------------------------------ timeline

function renderTimeline(tl) {
  const subjectSel = $('timeline-subject');
  const flows = new Map(); // flow id -> last end
  for (const t of tl.threads)
    for (const e of t.events) if (e[4] !== 0) flows.set(e[4], Math.max(flows.get(e[4]) || 0, e[2]));
  const recentFlows = [...flows.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30).map((f) => f[0]);
  const chosenFlow = /^f(\d+)$/.exec(subjectSel.value || '');
  if (chosenFlow && !recentFlows.includes(Number(chosenFlow[1]))) recentFlows.push(Number(chosenFlow[1])); // kept while chosen
  const options = ['<option value="all">all threads</option>']
    .concat(tl.threads.map((t) => `<option value="t${t.id}">thread ${esc(t.name || t.id)}${t.exited ? ' (exited)' : ''}</option>`))
    .concat(recentFlows.map((f) => `<option value="f${f}">flow #${f}</option>`));
  const chosen = subjectSel.value || 'all';
  const html = options.join('');
  if (subjectSel.dataset.options !== html) {
    subjectSel.innerHTML = html;
    subjectSel.dataset.options = html;
    subjectSel.value = [...subjectSel.options].some((o) => o.value === chosen) ? chosen : 'all';
  }
  const subject = subjectSel.value;

  const from = tl.now_ns - tl.window_ns;
  const cut = tl.threads.reduce((s, t) => s + t.cut, 0);
  const sites = new Map(tl.sites.map((s) => [s.id, s]));
  const rows = [];
  for (const t of tl.threads) {
    if (subject.startsWith('t') && subject !== `t${t.id}`) continue;
    const events = subject.startsWith('f') ? t.events.filter((e) => `f${e[4]}` === subject) : t.events;
    if (subject.startsWith('f') && events.length === 0) continue;
    if (subject === 'all' && events.length === 0) continue;
    rows.push({ thread: t, events });
  }
  const LANE = 14;
  let y = 18;
  const layout = rows.map((r) => {
    const blocks = r.events.filter((e) => e[0] === 0).sort((a, b) => a[1] - b[1] || b[2] - a[2]);
    const stack = [];
    let depth = 1;
    const placed = blocks.map((e) => {
      while (stack.length && stack[stack.length - 1] < e[2]) stack.pop();
      stack.push(e[2]);
      depth = Math.max(depth, stack.length);
      return { e, d: stack.length - 1 };
    });
    const row = { ...r, y, placed, height: depth * LANE + 10 };
    y += row.height;
    return row;
  });
  const canvas = $('timeline');
  const { g, w } = sizeCanvas(canvas, Math.max(80, y + 4));
  const LABEL = 110;
  const x = (t) => LABEL + ((t - from) / tl.window_ns) * (w - LABEL - 4);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  for (let i = 0; i <= 5; i++) {
    const t = from + (i * tl.window_ns) / 5;
    g.fillText(`-${((tl.window_ns * (5 - i)) / 5 / 1e9).toFixed(1)} s`, Math.min(x(t) - 12, w - 40), 11);
  }
  const bars = [];
  const marks = new Map(); // arrow id -> {suspend: [x, y], resume: [x, y]}
  for (const row of layout) {
    g.fillStyle = '#f3f5f9';
    g.fillRect(0, row.y, w, row.height - 4);
    g.fillStyle = '#1d2330';
    g.fillText(row.thread.name || `tid ${row.thread.id}`, 4, row.y + 12);
    for (const { e, d } of row.placed) {
      if (e[2] < from) continue;
      const x0 = Math.max(x(e[1]), LABEL);
      const x1 = Math.max(x(e[2]), x0 + 1);
      const site = sites.get(e[3]);
      const name = site ? site.name : `site ${e[3]}`;
      g.fillStyle = `hsl(${hue(name)}, 55%, ${e[4] ? 62 : 72}%)`;
      g.fillRect(x0, row.y + 3 + d * LANE, x1 - x0, LANE - 2);
      if (x1 - x0 > 50) {
        g.fillStyle = '#1d2330';
        g.fillText(name, x0 + 2, row.y + 13 + d * LANE);
      }
      bars.push({ x0, x1, y: row.y + 3 + d * LANE, e, name, thread: row.thread });
    }
    for (const e of row.events) {
      if (e[0] === 0 || e[5] === 0) continue;
      const m = marks.get(e[5]) || {};
      m[e[0] === 1 ? 'suspend' : 'resume'] = [x(e[1]), row.y + row.height / 2];
      marks.set(e[5], m);
    }
  }
  let arrows = 0;
  g.strokeStyle = '#2f6fdb';
  g.fillStyle = '#2f6fdb';
  // Many flows at once: faint arrows, so that the blocks stay readable.
  g.globalAlpha = subject.startsWith('f') ? 1 : 0.25;
  g.lineWidth = subject.startsWith('f') ? 1.5 : 0.75;
  for (const m of marks.values()) {
    if (!m.suspend || !m.resume || m.suspend[0] < LABEL) continue;
    const [ax, ay] = m.suspend;
    const [bx, by] = m.resume;
    g.beginPath();
    g.moveTo(ax, ay);
    g.lineTo(bx, by);
    g.stroke();
    const a = Math.atan2(by - ay, bx - ax);
    g.beginPath();
    g.moveTo(bx, by);
    g.lineTo(bx - 6 * Math.cos(a - 0.4), by - 6 * Math.sin(a - 0.4));
    g.lineTo(bx - 6 * Math.cos(a + 0.4), by - 6 * Math.sin(a + 0.4));
    g.fill();
    arrows++;
  }
  g.globalAlpha = 1;
  g.lineWidth = 1;
  live.timelineBars = bars.length;
  live.timelineArrows = arrows;
  const dropped = tl.threads.reduce((s, t) => s + t.dropped, 0);
  $('timeline-info').textContent = tl.on
    ? `${bars.length} blocks, ${arrows} suspend → resume arrows` +
      (cut ? `; the most recent ${TIMELINE_LIMIT} events per thread shown (${cut} older ones in the window left out)` : '') +
      (dropped ? `; ${dropped} events dropped by full buffers` : '')
    : 'timeline capture is off (Timeline on starts it)';
  canvas.onmousemove = (ev) => {
    const r = canvas.getBoundingClientRect();
    const px = ev.clientX - r.left;
    const py = ev.clientY - r.top;
    const hit = bars.filter((b) => px >= b.x0 && px <= b.x1 && py >= b.y && py < b.y + LANE - 2).pop();
    showTip(
      ev,
      hit &&
        `${hit.name}\n${fmtTime(hit.e[2] - hit.e[1])} on ${hit.thread.name || hit.thread.id}` +
          (hit.e[4] ? `\nflow #${hit.e[4]}` : ''),
    );
  };
  canvas.onmouseleave = () => showTip(null, null);
}

// ------------------------------------------------------------ refresh

let timer = null;
let busy = false;
async function tick(now) {
  clearTimeout(timer);
  if (busy) return schedule();
  if (document.hidden && !now) return schedule(); // a hidden page asks nothing of the program
  busy = true;
  try {
    const list = await getJSON('/api/profilers');
    const names = list.profilers.map((p) => p.name);
    if (!profiler || !names.includes(profiler)) profiler = names[0] || null;
    const sel = $('profiler');
    const opts = names.map((n) => `<option>${esc(n)}</option>`).join('');
    if (sel.dataset.options !== opts) {
      sel.innerHTML = opts;
      sel.dataset.options = opts;
    }
    sel.value = profiler || '';
    state = list.profilers.find((p) => p.name === profiler) || null;
    if (state) {
      const perThread = $('per-thread').checked;
      const res = await getJSON('/api/results', perThread ? { threads: '1' } : {});
      seenTracks = new Map();
      for (const r of perThread ? res.threads.map((t) => t.results) : [res])
        for (const t of r.tracks) seenTracks.set(t.track_idx, { track: t.track_idx, name: t.track_name, enabled: t.enabled });
      renderState();
      let rows;
      if (perThread) rows = res.threads.flatMap((t) => rowsOf(t.results, t.thread_name || String(t.thread_id)));
      else rows = rowsOf(res);
      renderTable(rows, perThread);
      if (now || Date.now() - lastSlow >= SLOW_MS) {
        lastSlow = Date.now();
        const weight = $('flame-weight').value;
        const folded = await fetch(`/api/folded${query({ weight })}`, { cache: 'no-store' });
        renderFlame(await folded.text(), weight);
        renderTimeline(await getJSON('/api/timeline', { seconds: $('timeline-window').value, limit: TIMELINE_LIMIT }));
      }
    }
    live.refreshes++;
    $('refreshes').textContent = live.refreshes;
  } catch (e) {
    const st = $('status');
    st.textContent = `offline (${e.message})`;
    st.className = 'status offline';
  } finally {
    busy = false;
  }
  schedule();
}
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(tick, REFRESH_MS);
}

$('start').addEventListener('click', () => control('/api/start').catch(alert));
$('stop').addEventListener('click', () => control('/api/stop').catch(alert));
$('clear').addEventListener('click', () => control('/api/clear').catch(alert));
$('timeline-toggle').addEventListener('click', () =>
  control('/api/capture', { on: state && state.timeline ? '0' : '1' }).catch(alert),
);
$('profiler').addEventListener('change', (ev) => {
  profiler = ev.target.value;
  lastHits = new Map();
  seenTracks = new Map();
  tick(true);
});
for (const id of ['filter', 'track-filter'])
  $(id).addEventListener(id === 'filter' ? 'input' : 'change', () => shownRows && renderTable(shownRows.rows, shownRows.perThread));
for (const id of ['per-thread', 'flame-weight', 'timeline-subject', 'timeline-window']) $(id).addEventListener('change', () => tick(true));
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) tick(true);
});
tick(true);
