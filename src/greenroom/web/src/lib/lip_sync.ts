/**
 * Lip-sync at the viewer: the picture waits as long as this browser holds the voice.
 *
 * The room asks every receiver to hold video `baseMs` (LiveKit's playout delay,
 * docs/compositor.md "Lip-sync"). That matches a quiet machine, where the browser's audio
 * jitter buffer holds the voice about 30-40 ms. When the audio buffer grows (a loaded
 * machine, a jittery network: 57-64 ms with two sessions on two cores), the voice comes out
 * that much after the lips. `PlayoutBalance` reads the audio receiver's mean buffering over
 * each window and asks the video receiver to hold what the audio holds over `QUIET_AUDIO_MS`
 * on top of `baseMs`, at most `MAX_EXTRA_MS` more. (The compositor does the same for its own
 * receiver, `compositor/lip_sync.py`, by holding composited frames.)
 *
 * Its own bundle too (static/build/lip_sync.js), so the A/V benchmark's page runs the same
 * code as the viewer page.
 */

/** Mean audio jitter-buffer time (ms) that the room's playout delay already covers. */
export const QUIET_AUDIO_MS = 40;
/** The most the page adds to the room's delay (ms). */
export const MAX_EXTRA_MS = 150;
/** Shortest window (ms) over which the audio's buffering is read: a second's mean jumps. */
export const WINDOW_MS = 2000;
/** Weight of a new window's reading in the running extra delay. */
export const SMOOTH = 0.5;
/** Smallest change (ms) worth a new request to the video receiver. */
export const STEP_MS = 5;

/** A receiver's cumulative jitter-buffer figures (WebRTC `inbound-rtp`). */
export interface BufferTotals {
  delayS: number;
  emitted: number;
}

/** The `inbound-rtp` jitter-buffer totals in a stats report, if it has them. */
export function bufferTotals(report: RTCStatsReport | undefined): BufferTotals | undefined {
  let totals: BufferTotals | undefined;
  report?.forEach((s) => {
    if (s.type === "inbound-rtp" && typeof s.jitterBufferEmittedCount === "number") {
      totals = { delayS: s.jitterBufferDelay as number, emitted: s.jitterBufferEmittedCount };
    }
  });
  return totals;
}

/** Mean buffering (ms) of what was emitted between `before` and `now`, or undefined. */
export function meanBufferMs(before: BufferTotals, now: BufferTotals): number | undefined {
  const n = now.emitted - before.emitted;
  if (n <= 0 || now.delayS < before.delayS) return undefined; // a new receiver
  return (1000 * (now.delayS - before.delayS)) / n;
}

/** The extra video delay (ms) for a window in which the audio was buffered `audioMs`. */
export function extraFor(audioMs: number): number {
  return Math.min(Math.max(audioMs - QUIET_AUDIO_MS, 0), MAX_EXTRA_MS);
}

interface VideoReceiver {
  setPlayoutDelay(delayInSeconds: number): void;
}

export class PlayoutBalance {
  /** The running extra delay (ms) on top of the room's. */
  extraMs = 0;
  /** The audio's mean buffering over the last window (ms), for the page's metrics. */
  audioMs: number | null = null;
  private before: BufferTotals | undefined;
  private beforeAt = 0;
  private askedMs: number;

  constructor(
    private readonly video: VideoReceiver,
    private readonly baseMs: number,
  ) {
    this.askedMs = baseMs;
    video.setPlayoutDelay(baseMs / 1000);
  }

  /** Take a new reading of the audio receiver's statistics (call every second or so). */
  update(audio: RTCStatsReport | undefined, atMs: number = performance.now()): void {
    const now = bufferTotals(audio);
    const before = this.before;
    if (now && before && atMs - this.beforeAt < WINDOW_MS) return; // the window is still open
    this.before = now;
    this.beforeAt = atMs;
    if (!now || !before) return;
    const mean = meanBufferMs(before, now);
    if (mean === undefined) return;
    this.audioMs = mean;
    this.extraMs += SMOOTH * (extraFor(mean) - this.extraMs);
    const want = Math.round(this.baseMs + this.extraMs);
    if (Math.abs(want - this.askedMs) >= STEP_MS) {
      this.askedMs = want;
      this.video.setPlayoutDelay(want / 1000);
    }
  }

  /** The delay (ms) the video receiver was last asked for. */
  get delayMs(): number {
    return this.askedMs;
  }
}
