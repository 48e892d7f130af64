// LiveAvatar's official web SDK (@heygen/liveavatar-web-sdk), FULL mode, driven against
// Greenroom's LiveAvatar emulator. Bundled with esbuild into an IIFE and run in Chromium.
// The package's "exports" name a lib/ build it does not ship, so the bundle is imported.
// window.runLiveAvatarSdk({apiUrl, sessionToken, text}) returns what the SDK reported.
import {
  AgentEventsEnum,
  LiveAvatarSession,
  SessionEvent,
} from "./node_modules/@heygen/liveavatar-web-sdk/dist/index.esm.js";

function waitFor(check, ms, what) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      const v = check();
      if (v) return resolve(v);
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

window.runLiveAvatarSdk = async ({ apiUrl, sessionToken, text }) => {
  const out = { events: [] };
  const session = new LiveAvatarSession(sessionToken, { apiUrl });
  session.on(SessionEvent.SESSION_STREAM_READY, () => out.events.push("stream_ready"));
  for (const name of [
    AgentEventsEnum.AVATAR_SPEAK_STARTED,
    AgentEventsEnum.AVATAR_SPEAK_ENDED,
    AgentEventsEnum.AVATAR_TRANSCRIPTION,
  ]) {
    session.on(name, (ev) => out.events.push(ev?.text ? `${name}:${ev.text}` : name));
  }
  await session.start();
  out.sessionId = session.sessionId;
  await waitFor(() => out.events.includes("stream_ready"), 20000, "stream ready");

  const video = document.createElement("video");
  video.muted = true;
  document.body.appendChild(video);
  session.attach(video);
  await video.play();
  await waitFor(() => video.videoWidth > 0, 10000, "video frames");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  out.videoSize = [video.videoWidth, video.videoHeight];
  out.cornerPixel = Array.from(ctx.getImageData(8, 8, 1, 1).data.slice(0, 3));

  session.repeat(text);
  await waitFor(
    () => out.events.includes(AgentEventsEnum.AVATAR_SPEAK_STARTED),
    20000,
    "avatar.speak_started",
  );
  await waitFor(
    () => out.events.includes(AgentEventsEnum.AVATAR_SPEAK_ENDED),
    30000,
    "avatar.speak_ended",
  );
  await session.keepAlive();
  await session.stop();
  out.state = session.state;
  return out;
};
