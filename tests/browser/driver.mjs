// Drives Rotunda's browser client in headless Chromium for tests/browser.rs.
//
//   node driver.mjs --out DIR --seconds 20 --page NAME=URL [--page NAME=URL ...]
//                   [--expect NAME ...] [--timeout 90] [--chromium /usr/bin/chromium]
//                   [--headful] [--hide NAME ...]
//
// One Chromium (own user-data dir) per page, with fake camera and microphone. Each page logs
// `rotunda:stats {JSON}` once a second (the shape of `rotunda bot --stats-json`); the driver keeps
// the latest per page. It prints `load NAME ...` with what the page's bundle cost on the wire and
// how long after opening the page its first frame was drawn. It waits until every page has
// joined (stats with a nonzero id) and prints `ready NAME=ID ...`; then until every page lists
// all the other pages and every --expect name among its peers, and prints `present`. Pages named
// by --hide then go behind a blank tab of their own (hidden, as when the user switches tabs:
// this takes --headful, since headless Chromium keeps every tab visible), and DIR/NAME.hidden.json
// holds their stats from the moment they were hidden. Then it holds for --seconds, samples
// requestAnimationFrame intervals for 5 s in each visible page, and leaves DIR/NAME.png
// (screenshot), DIR/NAME.json (last stats) and DIR/NAME.timeline.jsonl (every stats line in
// brief, to see when a shortfall happened). Exit 0 when all that happened; 1 with a message
// (and each page's last console lines) otherwise. `rotunda:error` lines, console errors and
// uncaught page errors go to stderr, prefixed by the page name.

import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-background-networking',
  '--enable-unsafe-swiftshader',
  '--ignore-gpu-blocklist',
  // WebGL2 is drawn on the CPU here (SwiftShader): half the pixels per side keeps frames short
  // in the headful browser. Headless pages are sized by the driver (1280x720 at scale 1).
  '--force-device-scale-factor=0.5',
  ...(process.env.ROTUNDA_CHROMIUM_ARGS || '').split(' ').filter(Boolean),
];
const STATS = 'rotunda:stats';
const FIRST_FRAME = 'rotunda:first-frame';
/** A page is ready once this many stats lines came with at most STEADY_GAP_MS between them. */
const STEADY_LINES = 5;
const STEADY_GAP_MS = 2500;
const ERROR = 'rotunda:error';
/** How long requestAnimationFrame is sampled in each page. */
const FRAME_SAMPLE_MS = 5000;
/** A page that logged no stats for this long (after joining) has stopped. */
const STALE_MS = 10000;
/** Console lines kept per page for a failure message. */
const KEEP_LINES = 30;

class Failure extends Error {}

function parse() {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      seconds: { type: 'string', default: '20' },
      page: { type: 'string', multiple: true, default: [] },
      expect: { type: 'string', multiple: true, default: [] },
      timeout: { type: 'string', default: '90' },
      chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
      headful: { type: 'boolean', default: false },
      hide: { type: 'string', multiple: true, default: [] },
    },
    strict: true,
  });
  if (!values.out) throw new Failure('--out DIR is required');
  if (values.page.length === 0) throw new Failure('at least one --page NAME=URL is required');
  const seconds = Number(values.seconds);
  const timeout = Number(values.timeout);
  if (!(seconds >= 0)) throw new Failure(`--seconds ${values.seconds}: not a number of seconds`);
  if (!(timeout > 0)) throw new Failure(`--timeout ${values.timeout}: not a number of seconds`);
  const pages = values.page.map((spec) => {
    const at = spec.indexOf('=');
    if (at <= 0) throw new Failure(`--page ${spec}: expected NAME=URL`);
    return { name: spec.slice(0, at), url: spec.slice(at + 1) };
  });
  const names = new Set(pages.map((p) => p.name));
  if (names.size !== pages.length) throw new Failure('page names must differ');
  return { ...values, pages, seconds, timeout };
}

/** Every page's state changes through here, so waits re-check their condition on it. */
const changes = new EventEmitter();
changes.setMaxListeners(0);

/** One page in its own Chromium. */
class Page {
  constructor(name, url) {
    this.name = name;
    this.url = url;
    this.stats = null;
    this.statsAt = 0;
    this.lines = [];
    this.failure = null;
    this.context = null;
    this.page = null;
    this.userDataDir = null;
    this.openedAt = 0;
    this.firstFrameMs = null;
    this.hidden = null;
    /** Every stats line's counts, in brief, to see when a shortfall happened. */
    this.timeline = [];
  }

  fail(why) {
    if (!this.failure) {
      this.failure = why;
      changes.emit('change');
    }
  }

  keep(line) {
    this.lines.push(line);
    if (this.lines.length > KEEP_LINES) this.lines.shift();
  }

  say(line) {
    const at = this.openedAt ? ` ${((Date.now() - this.openedAt) / 1000).toFixed(1)} s` : '';
    process.stderr.write(`[${this.name}${at}] ${line}\n`);
  }

  onConsole(message) {
    const text = message.text();
    const type = message.type();
    if (text.startsWith(STATS)) {
      try {
        this.stats = JSON.parse(text.slice(STATS.length));
        this.statsAt = Date.now();
        this.statsTimes = [...(this.statsTimes ?? []).slice(-(STEADY_LINES - 1)), this.statsAt];
        this.timeline.push(brief(this.stats, this.statsAt - this.openedAt));
      } catch (error) {
        this.fail(`unreadable ${STATS} line (${error.message}): ${text.slice(0, 300)}`);
        return;
      }
      if (typeof this.stats.error === 'string' && this.stats.error !== '') {
        this.fail(`the session ended: ${this.stats.error}`);
      }
      changes.emit('change');
      return;
    }
    if (text.includes(FIRST_FRAME) && this.firstFrameMs === null) {
      this.firstFrameMs = Date.now() - this.openedAt;
    }
    // A failed load names its resource only in the location.
    const where = type === 'error' && !text.startsWith(ERROR) ? message.location()?.url : '';
    const line = where ? `${text} (${where})` : text;
    this.keep(`console.${type}: ${line}`);
    // Warnings too: the engine's (tracing's WARN, through console.log) explain what a count shows.
    const warning = type === 'warning' || /(^|%c|\s)WARN\b/.test(text);
    if (text.startsWith(ERROR) || type === 'error' || warning) this.say(line);
  }

  async open(executablePath, headful) {
    this.userDataDir = await mkdtemp(path.join(tmpdir(), `rotunda-${this.name}-`));
    // A browser of our own, attached to without Playwright's defaults: those keep every page
    // "visible" and focused, and switch off backgrounding and timer throttling, which is just
    // what a hidden tab is about. And started in this process's session, as a user's browser is
    // in the user's: Playwright starts each browser in a session of its own, and the kernel
    // (autogroup) then shares the CPU between sessions first, so that a page drawing on the CPU
    // held its own call worker — and, measured, every other process here — up to 250 ms.
    this.process = spawn(
      executablePath,
      [
        ...CHROMIUM_ARGS,
        ...(headful ? [] : ['--headless', '--hide-scrollbars', '--mute-audio']),
        '--no-first-run',
        '--window-size=1280,720',
        '--remote-debugging-port=0',
        `--user-data-dir=${this.userDataDir}`,
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const endpoint = await withTimeout(
      new Promise((resolve, reject) => {
        let seen = '';
        const read = (data) => {
          seen += data;
          const match = seen.match(/DevTools listening on (ws:\/\/\S+)/);
          if (match) {
            // Read on, unkept: a full pipe would stop the browser.
            this.process.stderr.off('data', read);
            this.process.stderr.resume();
            resolve(match[1]);
          }
        };
        this.process.stderr.on('data', read);
        this.process.once('exit', (code) => reject(new Failure(`${this.name}: Chromium exited (${code}): ${seen.slice(-500)}`)));
      }),
      30000,
      `${this.name}: Chromium did not start`,
    );
    this.browser = await chromium.connectOverCDP(endpoint, { noDefaults: true });
    this.context = this.browser.contexts()[0];
    this.page = this.context.pages()[0] ?? (await this.context.newPage());
    // Headless, the window's size leaves room for a toolbar nobody sees: the page gets it all.
    if (!headful) await this.page.setViewportSize({ width: 1280, height: 720 });
    this.page.on('console', (message) => this.onConsole(message));
    this.page.on('pageerror', (error) => {
      this.keep(`pageerror: ${error.stack ?? error.message}`);
      this.say(`pageerror: ${error.message}`);
    });
    this.page.on('requestfailed', (request) => {
      this.keep(`request failed: ${request.url()} (${request.failure()?.errorText})`);
    });
    this.page.on('response', (response) => {
      if (response.status() >= 400) this.keep(`HTTP ${response.status()}: ${response.url()}`);
    });
    this.page.on('crash', () => this.fail('the page crashed'));
    this.context.on('close', () => this.fail('the browser closed'));
    this.openedAt = Date.now();
    const response = await this.page
      .goto(this.url, { waitUntil: 'load', timeout: 90000 })
      .catch((error) => {
        throw new Failure(`${this.name}: could not open ${this.url}: ${error.message.split('\n')[0]}`);
      });
    if (response && !response.ok()) {
      throw new Failure(`${this.name}: ${this.url} answered HTTP ${response.status()}`);
    }
  }

  /** In the room, and keeping time: its last stats lines came about once a second (a page
   * still compiling its shaders on the CPU stalls for seconds, and its first media comes in a
   * burst that says nothing about the call). */
  joined() {
    const times = this.statsTimes ?? [];
    const steady = times.length >= STEADY_LINES &&
      times.slice(1).every((at, i) => at - times[i] <= STEADY_GAP_MS);
    return Number(this.stats?.id) > 0 && steady;
  }

  /** Names in `names` this page does not list among its peers yet. */
  missing(names) {
    const peers = this.stats?.peers ?? {};
    return names.filter((name) => name !== this.name && !(name in peers));
  }

  /** Milliseconds between animation frames, sampled for `ms`. */
  async frameIntervals(ms) {
    const sample = this.page.evaluate(
      (ms) =>
        new Promise((resolve) => {
          const intervals = [];
          let start;
          let last;
          const step = (now) => {
            if (start === undefined) start = now;
            else intervals.push(now - last);
            last = now;
            if (now - start < ms) requestAnimationFrame(step);
            else resolve(intervals);
          };
          requestAnimationFrame(step);
        }),
      ms,
    );
    return withTimeout(sample, ms + 15000, `${this.name}: requestAnimationFrame stopped running`);
  }

  /** Bytes the page's bundle (the content-addressed folder) took on the wire, and unpacked. */
  async bundleBytes() {
    return this.page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((entry) => entry.name.includes('/b-'))
        .reduce(
          (sum, entry) => ({
            wire: sum.wire + entry.transferSize,
            unpacked: sum.unpacked + entry.decodedBodySize,
          }),
          { wire: 0, unpacked: 0 },
        ),
    );
  }

  /** Opens a blank tab in front of the page, in its window; resolves once the page says it is
   * hidden. */
  async hide() {
    const session = await this.context.newCDPSession(this.page);
    await session.send('Target.createTarget', {
      url: 'about:blank',
      newWindow: false,
      background: false,
    });
    // Polled by time: a hidden page draws no animation frames.
    await this.page
      .waitForFunction(() => document.visibilityState === 'hidden', null, {
        polling: 100,
        timeout: 5000,
      })
      .catch(() => {});
    const state = await this.page.evaluate(() => document.visibilityState);
    if (state !== 'hidden') {
      throw new Failure(`${this.name}: still ${state} behind another tab (use --headful)`);
    }
    this.hidden = { from: structuredClone(this.stats), at: Date.now() };
  }

  describe() {
    const stats = this.stats ? JSON.stringify(this.stats).slice(0, 600) : '(none)';
    const lines = this.lines.length ? this.lines.map((l) => `    ${l}`).join('\n') : '    (none)';
    return `  ${this.name} (${this.url})\n   last stats: ${stats}\n   last console lines:\n${lines}`;
  }

  async close() {
    const context = this.context;
    this.context = null;
    if (this.browser) await this.browser.close().catch(() => {});
    else if (context) await context.close().catch(() => {});
    const browser = this.process;
    if (browser && browser.exitCode === null) {
      const exited = new Promise((resolve) => browser.once('exit', resolve));
      browser.kill();
      await withTimeout(exited, 10000, 'Chromium did not exit').catch(() => browser.kill('SIGKILL'));
    }
    if (this.userDataDir) {
      await rm(this.userDataDir, { recursive: true, force: true, maxRetries: 5 }).catch(() => {});
    }
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Failure(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function firstFailure(pages) {
  const page = pages.find((p) => p.failure);
  return page && new Failure(`${page.name}: ${page.failure}`);
}

/** Resolves once `condition()` holds, re-checked on every change; rejects on a failure or after `ms`. */
function until(pages, what, condition, ms) {
  return new Promise((resolve, reject) => {
    let timer;
    const finish = (error) => {
      clearTimeout(timer);
      changes.off('change', check);
      if (error) reject(error);
      else resolve();
    };
    const check = () => {
      const failure = firstFailure(pages);
      if (failure) finish(failure);
      else if (condition()) finish();
    };
    timer = setTimeout(
      () => finish(new Failure(`timed out after ${ms / 1000} s waiting for ${what()}`)),
      ms,
    );
    changes.on('change', check);
    check();
  });
}

/** Lets `ms` pass, unless a page fails first. */
function hold(pages, ms) {
  return until(pages, () => 'time to pass', () => false, ms).catch((error) => {
    if (firstFailure(pages)) throw error;
  });
}

/** Marks a page failed when its stats stop coming (a panic stops the whole client). */
function watchStaleness(pages) {
  const timer = setInterval(() => {
    for (const page of pages) {
      if (page.statsAt && Date.now() - page.statsAt > STALE_MS) {
        page.fail(`no ${STATS} line for ${STALE_MS / 1000} s`);
      }
    }
  }, 1000);
  return () => clearInterval(timer);
}

/**
 * A stats line in brief, at `ms` after the page opened: per peer, video received/expected/
 * decoded/skipped, audio expected/decoded and its latency p95 so far (all counts cumulative).
 */
function brief(stats, ms) {
  const peers = Object.fromEntries(
    Object.entries(stats.peers ?? {}).map(([name, p]) => [
      name,
      [
        p.video_frames_received,
        p.video_frames_expected,
        p.video_frames_decoded,
        p.video_frames_skipped,
        p.audio_frames_expected,
        p.audio_frames_decoded,
        Math.round(p.audio_latency_ms_p95),
      ],
    ]),
  );
  return { ms, link: stats.link_kbps, sent: stats.video_sent, peers };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, rank)];
}

async function run(options, pages) {
  await mkdir(options.out, { recursive: true });
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const timeout = options.timeout * 1000;

  // Settled, not raced: a page still launching when another fails would outlive the driver.
  const opened = await Promise.allSettled(
    pages.map((page) => page.open(options.chromium, options.headful)),
  );
  const refused = opened.find((result) => result.status === 'rejected');
  if (refused) throw refused.reason;
  console.log(`opened ${pages.map((p) => p.name).join(', ')} after ${elapsed()}`);

  await until(
    pages,
    () => `${pages.filter((p) => !p.joined()).map((p) => p.name).join(', ')} to join and keep time (stats with a nonzero id, ${STEADY_LINES} of them at most ${STEADY_GAP_MS} ms apart)`,
    () => pages.every((p) => p.joined()),
    timeout,
  );
  console.log(`ready ${pages.map((p) => `${p.name}=${p.stats.id}`).join(' ')} after ${elapsed()}`);
  for (const page of pages) {
    const bytes = await page.bundleBytes();
    console.log(
      `load ${page.name} wire ${bytes.wire} bytes unpacked ${bytes.unpacked} bytes ` +
        `first-frame ${page.firstFrameMs ?? 'never'} ms`,
    );
  }
  const stopWatching = watchStaleness(pages);
  try {
    const everyone = [...pages.map((p) => p.name), ...options.expect];
    await until(
      pages,
      () =>
        pages
          .filter((p) => p.missing(everyone).length)
          .map((p) => `${p.name} to see ${p.missing(everyone).join(', ')}`)
          .join('; '),
      () => pages.every((p) => p.missing(everyone).length === 0),
      timeout,
    );
    console.log(`present ${everyone.join(' ')} after ${elapsed()}`);

    const hiding = pages.filter((p) => options.hide.includes(p.name));
    for (const page of hiding) {
      await page.hide();
      console.log(`hidden ${page.name} at ${elapsed()}`);
    }

    await hold(pages, options.seconds * 1000);
    console.log(`held ${options.seconds} s, at ${elapsed()}`);

    for (const page of hiding) {
      const hidden = path.join(options.out, `${page.name}.hidden.json`);
      const state = await page.page.evaluate(() => document.visibilityState);
      const seconds = (Date.now() - page.hidden.at) / 1000;
      const record = { seconds, visibility: state, from: page.hidden.from, to: page.stats };
      await writeFile(hidden, `${JSON.stringify(record, null, 2)}\n`);
      console.log(`wrote ${hidden} (${state} for ${seconds.toFixed(1)} s)`);
    }
    const visible = pages.filter((p) => !options.hide.includes(p.name));
    const intervals = await Promise.all(visible.map((p) => p.frameIntervals(FRAME_SAMPLE_MS)));
    visible.forEach((page, i) => {
      const sorted = [...intervals[i]].sort((a, b) => a - b);
      const [p50, p95] = [percentile(sorted, 50), percentile(sorted, 95)];
      console.log(
        `frame-time ${page.name} p50 ${p50.toFixed(1)} ms p95 ${p95.toFixed(1)} ms over ${sorted.length} frames`,
      );
    });

    for (const page of pages) {
      const shot = path.join(options.out, `${page.name}.png`);
      const stats = path.join(options.out, `${page.name}.json`);
      await page.page.screenshot({ path: shot, timeout: 30000 });
      await writeFile(stats, `${JSON.stringify(page.stats, null, 2)}\n`);
      const timeline = path.join(options.out, `${page.name}.timeline.jsonl`);
      await writeFile(timeline, page.timeline.map((line) => `${JSON.stringify(line)}\n`).join(''));
      console.log(`wrote ${shot} ${stats} ${timeline}`);
    }
    const failure = firstFailure(pages);
    if (failure) throw failure;
  } finally {
    stopWatching();
  }
  console.log(`done after ${elapsed()}`);
}

async function main() {
  let options;
  try {
    options = parse();
  } catch (error) {
    process.stderr.write(`driver: ${error.message}\n`);
    return 2;
  }
  const pages = options.pages.map(({ name, url }) => new Page(name, url));
  try {
    await run(options, pages);
    return 0;
  } catch (error) {
    const message = error instanceof Failure ? error.message : (error.stack ?? String(error));
    process.stderr.write(`driver: FAILED: ${message}\n${pages.map((p) => p.describe()).join('\n')}\n`);
    for (const page of pages) {
      if (!page.page || page.page.isClosed()) continue;
      const shot = path.join(options.out, `${page.name}.failed.png`);
      await page.page
        .screenshot({ path: shot, timeout: 10000 })
        .then(() => process.stderr.write(`driver: screenshot of the failure: ${shot}\n`))
        .catch(() => {});
    }
    return 1;
  } finally {
    await Promise.all(pages.map((p) => p.close()));
  }
}

process.exit(await main());
