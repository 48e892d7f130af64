// The official @heygen/streaming-avatar SDK, driven against Greenroom's HeyGen emulator.
// Bundled with esbuild into an IIFE and run in Chromium (livekit-client needs WebRTC).
// window.runHeygenSdk({basePath, token, avatarName}) returns what the SDK reported.
import StreamingAvatar, {
  AvatarQuality,
  StreamingEvents,
  TaskMode,
  TaskType,
} from "@heygen/streaming-avatar";

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

window.runHeygenSdk = async ({ basePath, token, avatarName, text }) => {
  const out = { events: [], errors: [] };
  const avatar = new StreamingAvatar({ token, basePath });
  for (const name of Object.values(StreamingEvents)) {
    avatar.on(name, (ev) => out.events.push({ name, type: ev?.detail?.type ?? null }));
  }
  let stream = null;
  avatar.on(StreamingEvents.STREAM_READY, (ev) => { stream = ev.detail; });
  const info = await avatar.createStartAvatar({
    avatarName,
    quality: AvatarQuality.Low,
    voice: { voiceId: "en-us" },
    activityIdleTimeout: 60,
  });
  out.sessionId = info.session_id;
  await waitFor(() => stream, 20000, "stream_ready");
  out.videoTracks = stream.getVideoTracks().length;
  out.audioTracks = stream.getAudioTracks().length;
  // the video plays: draw a frame and read a pixel of the (green) screen
  const video = document.createElement("video");
  video.muted = true;
  video.srcObject = stream;
  document.body.appendChild(video);
  await video.play();
  await waitFor(() => video.videoWidth > 0, 10000, "video frames");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  out.videoSize = [video.videoWidth, video.videoHeight];
  out.cornerPixel = Array.from(ctx.getImageData(8, 8, 1, 1).data.slice(0, 3));

  // repeat over REST (streaming.task), then talk over the SDK's WebSocket (protobuf text frame)
  const task = await avatar.speak({ text, taskType: TaskType.REPEAT, taskMode: TaskMode.SYNC });
  out.task = task;
  await waitFor(
    () => out.events.some((e) => e.name === StreamingEvents.AVATAR_START_TALKING),
    20000,
    "avatar_start_talking",
  );
  await waitFor(
    () => out.events.some((e) => e.name === StreamingEvents.AVATAR_STOP_TALKING),
    30000,
    "avatar_stop_talking",
  );
  const before = out.events.filter((e) => e.name === StreamingEvents.AVATAR_START_TALKING).length;
  await avatar.speak({ text: "And once more over the socket." });
  await waitFor(
    () =>
      out.events.filter((e) => e.name === StreamingEvents.AVATAR_START_TALKING).length > before,
    20000,
    "talking again after a websocket task",
  );
  await avatar.interrupt();
  await avatar.keepAlive();
  out.stop = await avatar.stopAvatar();
  await avatar.room?.disconnect();
  return out;
};
