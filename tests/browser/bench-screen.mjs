// What sharing a screen costs a browser (BENCHMARKS.md, "Screen sharing"): headless Chromium
// shares its fake display (getDisplayMedia), reads its frames with a MediaStreamTrackProcessor
// and encodes them with WebCodecs as the client does (H.264 Baseline, level 4.0, realtime), at
// 5 and 15 pictures a second, for 10 s each; and, for comparison, the same page sharing nothing.
// The CPU is Chromium's (every process's user + system time from /proc) over each run.
//
//   node tests/browser/bench-screen.mjs [--chromium /usr/bin/chromium]

import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values } = parseArgs({ options: { chromium: { type: 'string', default: '/usr/bin/chromium' } } });
const SECONDS = 10;
const TICK = 100; // clock ticks per second in /proc

/** CPU seconds (user + system) of every process whose command line names chromium. */
function chromiumCpu() {
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chromium')) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone meanwhile
    }
  }
  return ticks / TICK;
}

const server = createServer((_, res) => res.end('<!doctype html><title>bench</title>'));
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const url = `http://localhost:${server.address().port}/`;
const browser = await chromium.launch({
  executablePath: values.chromium,
  headless: true,
  args: ['--no-sandbox', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
});
const page = await browser.newPage();
await page.goto(url);

async function run(fps, encode) {
  const before = chromiumCpu();
  const started = performance.now();
  const result = await page.evaluate(
    async ({ fps, encode, seconds }) => {
      const stream = await navigator.mediaDevices.getDisplayMedia({
        video: { frameRate: fps, width: { max: 1920 }, height: { max: 1080 } },
        audio: false,
      });
      const track = stream.getVideoTracks()[0];
      const { width, height } = track.getSettings();
      const reader = new MediaStreamTrackProcessor({ track }).readable.getReader();
      let bytes = 0;
      let outputs = 0;
      const sentAt = new Map();
      const latencies = [];
      const encoder = new VideoEncoder({
        output: (chunk) => {
          outputs += 1;
          bytes += chunk.byteLength;
          const at = sentAt.get(chunk.timestamp);
          if (at !== undefined) latencies.push(performance.now() - at);
        },
        error: (e) => console.error(e),
      });
      encoder.configure({
        codec: 'avc1.42E028',
        width,
        height,
        bitrate: Math.round(800000 * ((width * height) / (640 * 480)) * (Math.max(fps, 10) / 30)),
        framerate: fps,
        latencyMode: 'realtime',
        avc: { format: 'annexb' },
      });
      const end = performance.now() + seconds * 1000;
      let frames = 0;
      while (performance.now() < end) {
        const { value, done } = await reader.read();
        if (done) break;
        frames += 1;
        if (encode) {
          sentAt.set(value.timestamp, performance.now());
          encoder.encode(value, { keyFrame: frames === 1 || frames % (fps * 3) === 0 });
        }
        value.close();
      }
      await encoder.flush().catch(() => {});
      encoder.close();
      track.stop();
      latencies.sort((a, b) => a - b);
      const p = (q) => (latencies.length ? latencies[Math.floor((latencies.length - 1) * q)] : 0);
      return { width, height, frames, outputs, kbps: (bytes * 8) / 1000 / seconds, p50: p(0.5), p95: p(0.95) };
    },
    { fps, encode, seconds: SECONDS },
  );
  const cpu = chromiumCpu() - before;
  const wall = (performance.now() - started) / 1000;
  return { ...result, cpu: (cpu / wall) * 100 };
}

// A first run warms the page and the capture up; it is not counted.
await run(5, true);
console.log('| fps | encoded | display | frames read | encode latency p50 / p95 | kb/s | Chromium CPU, share of one core |');
console.log('|---:|---|---|---:|---:|---:|---:|');
for (const fps of [5, 15]) {
  for (const encode of [false, true]) {
    const r = await run(fps, encode);
    console.log(
      `| ${fps} | ${encode ? 'yes' : 'no (capture only)'} | ${r.width}x${r.height} | ${r.frames} | ` +
        `${encode ? `${r.p50.toFixed(1)} / ${r.p95.toFixed(1)} ms` : '-'} | ${encode ? r.kbps.toFixed(0) : '-'} | ${r.cpu.toFixed(0)} % |`,
    );
  }
}
await browser.close();
server.close();
