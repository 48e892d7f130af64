// The viewer page: joins the session's LiveKit room with the subscribe-only token from the
// link, shows the compositor's finished picture (never the raw avatar by accident), switches
// backgrounds through the compositor's RPC, and sends text to the avatar.
import {
  ConnectionState,
  DisconnectReason,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
  Room,
  RoomEvent,
  RpcError,
  Track,
  TrackEvent,
  VideoQuality,
} from "livekit-client";
import { CanvasKeyer } from "./lib/keyer";
import { PlayoutBalance } from "./lib/lip_sync";
import {
  checkNotExpired,
  type LibraryItem,
  parseLink,
  SessionApi,
  type SessionInfo,
  ViewerError,
} from "./lib/session";

const ROLE = "greenroom.role";
const BACKGROUND = "greenroom.background";
const KEY_COLOR = "greenroom.key_color";
const AVATAR = "greenroom.avatar";
const AVATAR_STATE = "greenroom.avatar.state";
const SET_BACKGROUND = "greenroom.set_background";
const OUTPUT_TRACK = "greenroom";
const INFO_EVERY_MS = 3000; // how often the page asks the server about its session
const COLORS = ["#0b3d91", "#1d6b48", "#6b1d3d", "#f2f2f2", "#222222", "#e0a100"];

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const el = {
  status: $("status"),
  speaking: $("speaking"),
  timeLeft: $("time-left"),
  restart: $<HTMLButtonElement>("restart"),
  stage: $("stage"),
  video: $<HTMLVideoElement>("video"),
  keyed: $<HTMLCanvasElement>("keyed"),
  overlay: $("overlay"),
  overlayTitle: $("overlay-title"),
  overlayText: $("overlay-text"),
  unmute: $<HTMLButtonElement>("unmute"),
  metrics: $("metrics"),
  library: $("bg-library"),
  colors: $("bg-colors"),
  blur: $<HTMLButtonElement>("bg-blur"),
  none: $<HTMLButtonElement>("bg-none"),
  upload: $<HTMLInputElement>("bg-upload"),
  custom: $<HTMLInputElement>("bg-custom"),
  current: $("bg-current"),
  say: $<HTMLFormElement>("say"),
  sayText: $<HTMLTextAreaElement>("say-text"),
  sayMode: $<HTMLSelectElement>("say-mode"),
  interrupt: $<HTMLButtonElement>("interrupt"),
  clientKey: $<HTMLInputElement>("client-key"),
  keyColor: $("key-color"),
  message: $("message"),
};

type State = "connecting" | "live" | "reconnecting" | "ended" | "error";

/** Exposed on window for tests and for people poking at the page in the console. */
interface ViewerDebug {
  state: State;
  compositor: string | null;
  avatar: string | null;
  background: string | null;
  avatarState: string | null;
  endedReason: string | null;
  /** Seconds until the session stops by itself, as the page shows it (null: not shown). */
  timeLeft: number | null;
  audioLevel: () => number;
  canPlaybackAudio: () => boolean;
  videoTrackSid: string | null;
  /** Milliseconds the last background RPC took to answer. */
  rpcMs: number | null;
  /** Mean time a video frame waited in the receiver's jitter buffer. */
  jitterBufferMs: number | null;
  /** Mean time the voice waited in its jitter buffer over the last 2 s window (lip-sync). */
  voiceBufferMs: number | null;
  /** The playout delay the page last asked of its video receiver (ms; lip-sync). */
  videoDelayMs: number | null;
  /** Milliseconds since navigation at each step of joining. */
  timings: Record<string, number>;
  error?: string;
}

class Viewer {
  private api: SessionApi;
  private compositor: RemoteParticipant | null = null;
  private audioEl: HTMLMediaElement | null = null;
  private voice: RemoteTrack | null = null;
  private balance: PlayoutBalance | null = null;
  private analyser: AnalyserNode | null = null;
  private audioCtx: AudioContext | null = null;
  private keyer: CanvasKeyer | null = null;
  private rawVideo: HTMLVideoElement | null = null;
  private lastStats = { bytes: 0, t: 0 };
  private ended = false;
  private infoAt = performance.now(); // when `info` was fetched
  debug: ViewerDebug = {
    state: "connecting",
    compositor: null,
    avatar: null,
    background: null,
    avatarState: null,
    endedReason: null,
    timeLeft: null,
    audioLevel: () => this.audioLevel(),
    canPlaybackAudio: () => this.room.canPlaybackAudio,
    videoTrackSid: null,
    rpcMs: null,
    jitterBufferMs: null,
    voiceBufferMs: null,
    videoDelayMs: null,
    timings: {},
  };

  /**
   * @param connecting the room's connect(), started while the session was being looked up;
   *   resolves to the connection error, or null.
   */
  constructor(
    private link: ReturnType<typeof parseLink>,
    private info: SessionInfo,
    private room: Room,
    private connecting: Promise<unknown>,
  ) {
    this.api = new SessionApi(link);
    this.debug.avatar = info.avatar_identity;
  }

  async start(): Promise<void> {
    this.bindControls();
    this.bindRoom();
    this.setState("connecting");
    this.loadLibrary();
    this.mark("session");
    const err = await this.connecting;
    if (err) {
      await this.failedToConnect(err);
      return;
    }
    this.mark("connected");
    this.setState("live");
    for (const p of this.room.remoteParticipants.values()) this.consider(p);
    if (!this.compositor) this.overlay("Waiting for the avatar", "The session is starting…");
    setInterval(() => this.updateMetrics(), 1000);
    setInterval(() => this.showTimeLeft(), 1000);
    setInterval(() => this.refreshInfo(), INFO_EVERY_MS);
  }

  /** The session as the server sees it now: time left, status, metrics. */
  private async refreshInfo(): Promise<void> {
    if (this.ended) return;
    const info = await this.api.session().catch(() => null);
    if (!info) return;
    this.info = info;
    this.infoAt = performance.now();
    if (!isLive(info.status)) this.checkEnded();
  }

  /** Under a minute left: say so, and why (idle, or the maximum duration). */
  private showTimeLeft(): void {
    const left = this.info.time_left;
    if (this.ended || left === null || left === undefined) {
      el.timeLeft.hidden = true;
      this.debug.timeLeft = null;
      return;
    }
    const now = Math.max(0, Math.ceil(left - (performance.now() - this.infoAt) / 1000));
    const show = now < 60;
    el.timeLeft.hidden = !show;
    this.debug.timeLeft = show ? now : null;
    if (!show) return;
    el.timeLeft.textContent =
      this.info.time_left_reason === "max_duration"
        ? `ends in ${now} s (maximum duration)`
        : `ends in ${now} s unless used (idle)`;
    el.timeLeft.title =
      this.info.time_left_reason === "max_duration"
        ? "The session reaches its maximum duration."
        : "Nothing has used the session for a while: speak, switch the background or send a keep-alive.";
  }

  // ---- room -------------------------------------------------------------------------------
  private bindRoom(): void {
    const r = this.room;
    r.on(RoomEvent.ParticipantConnected, (p) => this.consider(p));
    r.on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => {
      if (p !== r.localParticipant) this.consider(p as RemoteParticipant);
    });
    r.on(RoomEvent.TrackPublished, (_pub, p) => this.consider(p));
    r.on(RoomEvent.TrackSubscribed, (track, pub, p) => this.onTrack(track, pub, p));
    r.on(RoomEvent.TrackUnsubscribed, (track) => {
      if (track === this.voice) this.voice = null;
      for (const media of track.detach()) {
        if (media !== el.video) media.remove();
        if (media === this.audioEl) this.audioEl = null;
        if (media === this.rawVideo) this.rawVideo = null;
      }
    });
    r.on(RoomEvent.ParticipantDisconnected, (p) => {
      if (p === this.compositor) {
        this.compositor = null;
        this.debug.compositor = null;
        this.checkEnded();
      }
    });
    r.on(RoomEvent.Reconnecting, () => this.setState("reconnecting"));
    r.on(RoomEvent.Reconnected, () => this.setState("live"));
    r.on(RoomEvent.Disconnected, (reason) => this.onDisconnected(reason));
    r.on(RoomEvent.AudioPlaybackStatusChanged, () => this.updateUnmute());
  }

  /** Subscribe to the compositor's output; everything else stays unsubscribed. */
  private consider(p: RemoteParticipant): void {
    const attrs = p.attributes ?? {};
    if (attrs[AVATAR_STATE] !== undefined && p.identity === this.debug.avatar) {
      this.showAvatarState(attrs[AVATAR_STATE]);
    }
    const expected = this.info.compositor_identity;
    const isCompositor = expected ? p.identity === expected : attrs[ROLE] === "compositor";
    if (!isCompositor || attrs[ROLE] !== "compositor") return;
    if (this.compositor !== p) {
      this.compositor = p;
      this.debug.compositor = p.identity;
    }
    this.debug.avatar = attrs[AVATAR] ?? this.info.avatar_identity;
    this.showBackground(attrs[BACKGROUND] ?? null);
    if (attrs[KEY_COLOR]) {
      el.keyColor.textContent = attrs[KEY_COLOR];
      this.keyer?.setKeyColor(attrs[KEY_COLOR]);
    }
    const avatar = this.debug.avatar ? this.room.getParticipantByIdentity(this.debug.avatar) : undefined;
    if (avatar?.attributes?.[AVATAR_STATE]) this.showAvatarState(avatar.attributes[AVATAR_STATE]);
    for (const pub of p.trackPublications.values()) {
      const wanted =
        pub.kind === Track.Kind.Audio || (pub.kind === Track.Kind.Video && pub.trackName === OUTPUT_TRACK);
      if (wanted && !pub.isSubscribed) {
        pub.setSubscribed(true);
        // The finished picture at full size; the SFU still steps down if bandwidth is short.
        if (pub.kind === Track.Kind.Video) pub.setVideoQuality(VideoQuality.HIGH);
      }
    }
    if (el.clientKey.checked) this.subscribeRaw(true);
  }

  private onTrack(track: RemoteTrack, pub: RemoteTrackPublication, p: RemoteParticipant): void {
    if (p === this.compositor && track.kind === Track.Kind.Video) {
      // Lip-sync: the room asks every receiver to hold video this long, but LiveKit sends
      // that request only until the first receiver report, and a receiver that missed it
      // shows the picture ~50 ms early for the whole session. Asking our receiver directly
      // (Chromium's playout-delay hint) makes it hold, and longer while this browser holds
      // the voice longer than a quiet one does (lib/lip_sync.ts).
      const delayMs = this.info.video_playout_delay_ms;
      if (delayMs > 0) {
        this.balance = new PlayoutBalance(track, delayMs);
        this.debug.videoDelayMs = this.balance.delayMs;
      }
      track.attach(el.video);
      this.mark("subscribed");
      el.video.requestVideoFrameCallback?.(() => this.mark("first_frame"));
      this.debug.videoTrackSid = pub.trackSid;
      el.video.play().catch(() => undefined);
      this.overlay(null);
    } else if (p === this.compositor && track.kind === Track.Kind.Audio) {
      // The room's own flag can miss this element's refusal (it only reports the first one).
      track.on(TrackEvent.AudioPlaybackFailed, () => this.updateUnmute(true));
      track.on(TrackEvent.AudioPlaybackStarted, () => this.updateUnmute());
      this.voice = track;
      this.audioEl = track.attach();
      this.audioEl.id = "avatar-audio";
      document.body.appendChild(this.audioEl);
      this.meterAudio(track.mediaStreamTrack);
      this.updateUnmute();
    } else if (p.identity === this.debug.avatar && track.kind === Track.Kind.Video) {
      this.rawVideo = track.attach() as HTMLVideoElement;
      this.rawVideo.muted = true;
      this.rawVideo.hidden = true;
      document.body.appendChild(this.rawVideo);
      if (this.keyer && el.clientKey.checked) {
        this.keyer.video = this.rawVideo;
        this.keyer.start();
      }
    }
  }

  private async onDisconnected(reason?: DisconnectReason): Promise<void> {
    if (this.ended) return;
    if (reason === DisconnectReason.DUPLICATE_IDENTITY) {
      this.lost("This viewer link was opened in another tab or window, which took over.");
      return;
    }
    const info = await this.finalInfo();
    if (info && !isLive(info.status)) {
      this.info = info;
      this.end(info.ended_reason ?? info.status);
    } else if (reason === DisconnectReason.ROOM_DELETED) {
      this.end("the session's room was closed");
    } else if (reason === DisconnectReason.PARTICIPANT_REMOVED) {
      this.lost("This viewer was removed from the room.");
    } else {
      this.lost("The connection to the room was lost. Reload the page to rejoin.");
    }
  }

  /** The session's state once it settles: a stop is recorded just after the room closes. */
  private async finalInfo(): Promise<SessionInfo | null> {
    let info: SessionInfo | null = null;
    for (let i = 0; i < 20; i++) {
      info = await this.api.session().catch(() => null);
      if (!info || !isLive(info.status)) return info;
      await new Promise((r) => setTimeout(r, 250));
    }
    return info;
  }

  private async checkEnded(): Promise<void> {
    const info = await this.finalInfo();
    if (info && !isLive(info.status)) {
      this.info = info;
      this.end(info.ended_reason ?? info.status);
      await this.room.disconnect();
    } else if (!this.ended) {
      this.overlay("Waiting for the avatar", "The compositor left the room; waiting for it to return…");
    }
  }

  private lost(text: string): void {
    this.ended = true;
    this.setState("error", "disconnected");
    this.overlay("Disconnected", text);
    this.keyer?.stop();
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.debug.endedReason = reason;
    this.setState("ended", reason);
    this.overlay("Session ended", reason);
    el.timeLeft.hidden = true;
    if (this.info.can_restart) offerRestart(this.api);
    this.keyer?.stop();
    for (const b of document.querySelectorAll<HTMLButtonElement>(".panel button, .panel input, .panel select")) {
      b.disabled = true;
    }
  }

  private async failedToConnect(err: unknown): Promise<void> {
    const msg = err instanceof Error ? err.message : String(err);
    let title = "Could not join the room";
    let text = `LiveKit refused the connection: ${msg}`;
    if (/401|unauthori[sz]ed|token/i.test(msg)) {
      title = "Access denied";
      text = "The LiveKit server did not accept this viewer link's token (expired or for another server).";
    } else if (/failed to fetch|could not establish|websocket|network/i.test(msg)) {
      text = `The LiveKit server at ${this.link.livekitUrl} did not answer.`;
    }
    this.setState("error", title);
    this.overlay(title, text);
  }

  // ---- controls -----------------------------------------------------------------------------
  private bindControls(): void {
    for (const c of COLORS) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch color";
      b.style.background = c;
      b.title = c;
      b.dataset.spec = c;
      b.setAttribute("aria-label", `colour ${c}`);
      el.colors.appendChild(b);
    }
    document.querySelector(".panel")!.addEventListener("click", (ev) => {
      const target = (ev.target as HTMLElement).closest<HTMLElement>("[data-spec]");
      if (target?.dataset.spec) this.setBackground(target.dataset.spec);
    });
    el.custom.addEventListener("change", () => this.setBackground(el.custom.value));
    el.upload.addEventListener("change", () => this.upload());
    el.say.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.speak();
    });
    el.interrupt.addEventListener("click", () =>
      this.api.interrupt().then(
        () => this.note("Interrupted.", true),
        (e) => this.note(e.message),
      ),
    );
    el.unmute.addEventListener("click", () => this.unmute());
    el.clientKey.addEventListener("change", () => this.toggleClientKey());
  }

  private async loadLibrary(): Promise<void> {
    let items: LibraryItem[] = [];
    try {
      items = await this.api.backgrounds();
    } catch (e) {
      this.note(`Background library unavailable: ${(e as Error).message}`);
      return;
    }
    el.library.replaceChildren();
    for (const item of items) this.addLibraryItem(item);
    this.showBackground(this.debug.background);
  }

  private addLibraryItem(item: LibraryItem): void {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "swatch";
    b.dataset.spec = item.spec; // a library id: the server resolves it, no path leaves it
    b.dataset.kind = item.kind;
    b.title = item.name;
    libraryNames.set(fileName({ kind: item.kind, path: item.spec }), item.name);
    b.setAttribute("aria-label", `background ${item.name}`);
    const label = document.createElement("span");
    label.textContent = item.name;
    b.appendChild(label);
    el.library.appendChild(b);
    this.api
      .thumbnail(item)
      .then((url) => {
        if (url) b.style.backgroundImage = `url(${url})`;
      })
      .catch(() => undefined);
  }

  private async setBackground(spec: string): Promise<void> {
    if (!this.compositor) return this.note("The compositor has not joined yet.");
    const t0 = performance.now();
    try {
      await this.room.localParticipant.performRpc({
        destinationIdentity: this.compositor.identity,
        method: SET_BACKGROUND,
        payload: JSON.stringify({ background: spec, transition: 0.3 }),
      });
      this.debug.rpcMs = Math.round(performance.now() - t0);
      this.note("", true);
    } catch (e) {
      const msg = e instanceof RpcError ? e.message : String(e);
      this.note(`Background not changed: ${msg}`);
    }
  }

  private async upload(): Promise<void> {
    const file = el.upload.files?.[0];
    if (!file) return;
    try {
      const item = await this.api.upload(file);
      this.addLibraryItem(item);
      await this.setBackground(item.spec);
    } catch (e) {
      this.note(`Upload failed: ${(e as Error).message}`);
    } finally {
      el.upload.value = "";
    }
  }

  private async speak(): Promise<void> {
    const text = el.sayText.value.trim();
    if (!text) return;
    try {
      await this.api.speak(text, el.sayMode.value);
      this.note("Sent.", true);
    } catch (e) {
      this.note(`Not sent: ${(e as Error).message}`);
    }
  }

  private async unmute(): Promise<void> {
    await this.room.startAudio().catch(() => undefined);
    await this.audioEl?.play().catch(() => undefined);
    await this.audioCtx?.resume().catch(() => undefined);
    this.updateUnmute();
  }

  private updateUnmute(blocked = false): void {
    const paused = !!this.audioEl && this.audioEl.paused;
    el.unmute.hidden = !this.audioEl || (!blocked && this.room.canPlaybackAudio && !paused);
  }

  private toggleClientKey(): void {
    const on = el.clientKey.checked;
    if (on && !this.keyer) {
      this.keyer = new CanvasKeyer(el.keyed, this.rawVideo ?? document.createElement("video"));
    }
    el.stage.classList.toggle("client-keyed", on);
    el.keyed.hidden = !on;
    el.video.hidden = on;
    this.subscribeRaw(on);
    if (on) {
      this.keyer!.setKeyColor(el.keyColor.textContent ?? undefined);
      if (this.rawVideo) this.keyer!.start();
    } else {
      this.keyer?.stop();
    }
  }

  /** The raw avatar video only while client-side keying is on; its audio never (the compositor re-times it). */
  private subscribeRaw(on: boolean): void {
    const id = this.debug.avatar;
    const avatar = id ? this.room.remoteParticipants.get(id) : undefined;
    if (!avatar) return;
    for (const pub of avatar.trackPublications.values()) {
      if (pub.kind === Track.Kind.Video && pub.isSubscribed !== on) pub.setSubscribed(on);
    }
    if (!on && this.rawVideo) {
      this.rawVideo.remove();
      this.rawVideo = null;
    }
  }

  private mark(step: string): void {
    this.debug.timings[step] ??= Math.round(performance.now());
  }

  // ---- display --------------------------------------------------------------------------------
  private setState(state: State, detail?: string): void {
    this.debug.state = state;
    el.status.dataset.state = state;
    el.status.textContent = detail ? `${state}: ${detail}` : state;
  }

  private showAvatarState(state: string): void {
    this.debug.avatarState = state;
    el.speaking.hidden = false;
    el.speaking.dataset.state = state;
    el.speaking.textContent = state === "speaking" ? "avatar speaking" : `avatar ${state}`;
  }

  private showBackground(attr: string | null): void {
    this.debug.background = attr;
    const spec = normalise(attr);
    el.current.textContent = `current: ${spec ? describe(spec) : "–"}`;
    for (const b of document.querySelectorAll<HTMLElement>("[data-spec]")) {
      const mine = b.dataset.kind
        ? { kind: b.dataset.kind, path: b.dataset.spec }
        : normalise(b.dataset.spec ?? null);
      b.setAttribute("aria-selected", String(!!spec && !!mine && sameBackground(mine, spec)));
    }
  }

  private overlay(title: string | null, text = ""): void {
    el.overlay.hidden = title === null;
    el.overlayTitle.textContent = title ?? "";
    el.overlayText.textContent = text;
  }

  private noteTimer = 0;

  private note(text: string, ok = false): void {
    el.message.hidden = !text;
    el.message.textContent = text;
    el.message.classList.toggle("ok", ok);
    clearTimeout(this.noteTimer);
    if (ok && text) this.noteTimer = window.setTimeout(() => this.note(""), 3000);
  }

  // ---- audio level + metrics --------------------------------------------------------------
  private meterAudio(track: MediaStreamTrack): void {
    this.audioCtx?.close().catch(() => undefined);
    try {
      this.audioCtx = new AudioContext();
      const src = this.audioCtx.createMediaStreamSource(new MediaStream([track]));
      this.analyser = this.audioCtx.createAnalyser();
      this.analyser.fftSize = 2048;
      src.connect(this.analyser);
    } catch {
      this.analyser = null;
    }
  }

  /** RMS of the compositor's audio as this viewer hears it right now, 0..1 (0 while blocked). */
  private audioLevel(): number {
    if (!this.analyser || !this.audioEl || this.audioEl.paused || this.audioEl.muted) return 0;
    const buf = new Float32Array(this.analyser.fftSize);
    this.analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    return Math.sqrt(sum / buf.length);
  }

  private async updateMetrics(): Promise<void> {
    if (this.ended || this.room.state !== ConnectionState.Connected) return;
    const rows: [string, string][] = [];
    const pub = this.compositor?.getTrackPublicationByName(OUTPUT_TRACK);
    const track = pub?.videoTrack;
    if (track) {
      const report = await track.getRTCStatsReport();
      report?.forEach((s) => {
        if (s.type !== "inbound-rtp" || s.kind !== "video") return;
        const now = s.timestamp as number;
        const bytes = s.bytesReceived as number;
        if (this.lastStats.t) {
          const kbps = ((bytes - this.lastStats.bytes) * 8) / (now - this.lastStats.t);
          rows.push(["bitrate", `${kbps.toFixed(0)} kbit/s`]);
        }
        this.lastStats = { bytes, t: now };
        rows.push(["fps", `${(s.framesPerSecond ?? 0).toFixed(0)}`]);
        rows.push(["size", `${s.frameWidth ?? 0}×${s.frameHeight ?? 0}`]);
        rows.push(["lost", `${s.packetsLost ?? 0}`]);
        rows.push(["jitter", `${((s.jitter ?? 0) * 1000).toFixed(0)} ms`]);
        if (s.jitterBufferEmittedCount) {
          const ms = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
          this.debug.jitterBufferMs = Math.round(ms);
          rows.push(["jitter buffer", `${ms.toFixed(0)} ms`]);
        }
      });
    }
    if (this.balance && this.voice) {
      this.balance.update(await this.voice.getRTCStatsReport());
      this.debug.voiceBufferMs = this.balance.audioMs === null ? null : Math.round(this.balance.audioMs);
      this.debug.videoDelayMs = this.balance.delayMs;
      if (this.balance.audioMs !== null) rows.push(["voice buffer", `${this.balance.audioMs.toFixed(0)} ms`]);
      rows.push(["video delay", `${this.balance.delayMs} ms`]);
    }
    rows.push(["audio", this.audioLevel().toFixed(3)]);
    const t = this.debug.timings;
    if (t.first_frame) rows.push(["first frame", `${t.first_frame} ms`]);
    const m = this.info.metrics;
    if (m) {
      for (const [k, label] of [
        ["latency_ms_p95", "server latency p95"],
        ["keying_ms_p50", "keying p50"],
        ["dropped", "dropped"],
      ] as const) {
        if (typeof m[k] === "number") rows.push([label, k === "dropped" ? `${m[k]}` : `${m[k].toFixed(1)} ms`]);
      }
    }
    el.metrics.replaceChildren(
      ...rows.map(([k, v]) => {
        const d = document.createElement("div");
        d.innerHTML = "<dt></dt><dd></dd>";
        d.children[0].textContent = k;
        d.children[1].textContent = v;
        return d;
      }),
    );
  }
}

/** The demo's offer once a session has ended: a new one from the same template. */
function offerRestart(api: SessionApi): void {
  el.restart.hidden = false;
  el.restart.disabled = false;
  el.restart.onclick = async () => {
    el.restart.disabled = true;
    el.restart.textContent = "Starting…";
    try {
      window.location.assign(await api.restart());
    } catch (e) {
      el.restart.disabled = false;
      el.restart.textContent = "Start a new session";
      el.overlayText.textContent = `Could not start a new session: ${(e as Error).message}`;
    }
  };
}

function isLive(status: string): boolean {
  return status === "started" || status === "starting";
}

// ---- background specs as the compositor reports them -------------------------------------
interface Spec {
  kind: string;
  color?: string | null;
  path?: string | null; // a library id ("bg_…") for the picker's own items
  name?: string | null; // in the compositor's attribute: the file's name ("bg_….png")
  blur_radius?: number;
}

/** Library file name -> the name people gave it, for the "current" line. */
const libraryNames = new Map<string, string>();

/** The library id a spec refers to: the stored file is named "<id>.<ext>". */
function fileName(s: Spec): string {
  const base = (s.name ?? s.path ?? "").split("/").pop() ?? "";
  return base.replace(/\.[^.]*$/, "");
}

/** Parse an attribute (JSON) or a picker spec string ("#rrggbb", "blur", "none", "image:/p"). */
function normalise(s: string | null): Spec | null {
  if (!s) return null;
  const t = s.trim();
  if (t.startsWith("{")) {
    try {
      return JSON.parse(t) as Spec;
    } catch {
      return null;
    }
  }
  if (/^#[0-9a-f]{6}$/i.test(t)) return { kind: "color", color: t };
  const [kind, ...rest] = t.split(":");
  const arg = rest.join(":");
  if (kind === "color") return { kind, color: arg };
  if (kind === "image" || kind === "video") return { kind, path: arg };
  if (kind === "blur" || kind === "none") return { kind };
  return { kind: "image", path: t };
}

function sameBackground(a: Spec, b: Spec): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "color") return (a.color ?? "").toLowerCase() === (b.color ?? "").toLowerCase();
  if (a.kind === "image" || a.kind === "video") return fileName(a) === fileName(b);
  return true;
}

function describe(s: Spec): string {
  if (s.kind === "color") return s.color ?? "colour";
  if (s.kind === "image" || s.kind === "video") {
    const file = fileName(s);
    return `${s.kind} ${libraryNames.get(file) ?? file}`;
  }
  if (s.kind === "blur" && s.blur_radius) return `blur (${s.blur_radius})`;
  return s.kind;
}

// ---- boot -------------------------------------------------------------------------------------
function fatal(err: unknown, state: State = "error"): void {
  const e =
    err instanceof ViewerError ? err : new ViewerError("Something went wrong", String((err as Error)?.message ?? err));
  el.status.dataset.state = state;
  el.status.textContent = state === "ended" ? `ended: ${e.message}` : `error: ${e.title}`;
  el.overlay.hidden = false;
  el.overlayTitle.textContent = e.title;
  el.overlayText.textContent = e.message;
  for (const b of document.querySelectorAll<HTMLButtonElement>(".panel button, .panel input, .panel select")) {
    b.disabled = true;
  }
  (window as unknown as { greenroom: Partial<ViewerDebug> }).greenroom = {
    state,
    endedReason: state === "ended" ? e.message : null,
    error: `${e.title}: ${e.message}`,
  };
}

async function boot(): Promise<void> {
  const link = parseLink(window.location);
  checkNotExpired(link.token);
  // Join and look the session up at the same time; the session's answer decides what to show.
  const room = new Room({ adaptiveStream: false, dynacast: false });
  const connecting = room
    .connect(link.livekitUrl, link.token, { autoSubscribe: false })
    .then(() => null, (err: unknown) => err);
  let info: SessionInfo;
  try {
    info = await new SessionApi(link).session();
  } catch (err) {
    connecting.then(() => room.disconnect());
    throw err;
  }
  if (!isLive(info.status)) {
    connecting.then(() => room.disconnect());
    fatal(new ViewerError("Session ended", info.ended_reason ?? info.status), "ended");
    if (info.can_restart) offerRestart(new SessionApi(link));
    return;
  }
  const viewer = new Viewer(link, info, room, connecting);
  (window as unknown as { greenroom: ViewerDebug }).greenroom = viewer.debug;
  await viewer.start();
}

boot().catch(fatal);
