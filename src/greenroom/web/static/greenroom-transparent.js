// Draw a Greenroom "alpha_packed" track transparent on a canvas.
//
// The compositor's alpha_packed output is one video twice as wide as the avatar: the left half
// is the avatar's colour premultiplied by its matte (keyed over black), the right half is the
// matte as grey (R = G = B = alpha). This module puts them back together on a 2D canvas, so the
// page under the canvas shows wherever the matte is 0.
//
//   import { drawTransparent } from "/web/greenroom-transparent.js";   // as the service serves it
//   const stop = drawTransparent(mediaStreamTrack, canvas);   // stop() to end
//
//   <greenroom-avatar></greenroom-avatar>                       // or the element:
//   document.querySelector("greenroom-avatar").track = mediaStreamTrack;
//
// With livekit-client, `mediaStreamTrack` is `remoteTrack.mediaStreamTrack` of the
// compositor's "greenroom" track (participant attribute greenroom.output = alpha_packed).

/**
 * Keep `canvas` showing `source` (a MediaStreamTrack or a playing <video>) unpacked and
 * transparent. The canvas takes the avatar's size (half the track's width).
 * @returns {() => void} stops drawing (and releases the hidden video it made, if any)
 */
export function drawTransparent(source, canvas) {
  let video = source;
  let owned = false;
  if (!(source instanceof HTMLVideoElement)) {
    video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.srcObject = new MediaStream([source]);
    video.play().catch(() => {}); // autoplay of a muted video is allowed
    owned = true;
  }
  const work = document.createElement("canvas"); // the packed frame, read back
  const wctx = work.getContext("2d", { willReadFrequently: true });
  const ctx = canvas.getContext("2d");
  let running = true;
  let image = null;

  const draw = () => {
    const pw = video.videoWidth;
    const h = video.videoHeight;
    const w = pw >> 1;
    if (video.readyState >= 2 && w > 0 && h > 0) {
      if (work.width !== pw || work.height !== h) {
        work.width = pw;
        work.height = h;
      }
      if (canvas.width !== w || canvas.height !== h) {
        canvas.width = w;
        canvas.height = h;
      }
      if (!image || image.width !== w || image.height !== h) image = ctx.createImageData(w, h);
      wctx.drawImage(video, 0, 0);
      const src = wctx.getImageData(0, 0, pw, h).data;
      const dst = image.data;
      for (let y = 0; y < h; y++) {
        let s = y * pw * 4; // colour, left half
        let m = s + w * 4; // matte, right half
        let d = y * w * 4;
        for (let x = 0; x < w; x++, s += 4, m += 4, d += 4) {
          const a = src[m];
          if (a < 4) {
            dst[d + 3] = 0; // codec noise around 0 is transparent
            continue;
          }
          // premultiplied in, straight out (ImageData is not premultiplied)
          const k = a >= 251 ? 1 : 255 / a;
          dst[d] = Math.min(255, src[s] * k);
          dst[d + 1] = Math.min(255, src[s + 1] * k);
          dst[d + 2] = Math.min(255, src[s + 2] * k);
          dst[d + 3] = a >= 251 ? 255 : a;
        }
      }
      ctx.putImageData(image, 0, 0);
    }
    if (!running) return;
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(draw);
    else requestAnimationFrame(draw);
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(draw);
  else requestAnimationFrame(draw);

  return () => {
    running = false;
    if (owned) {
      video.pause();
      video.srcObject = null;
    }
  };
}

/** `<greenroom-avatar>`: set `.track` to the packed MediaStreamTrack; it draws a canvas. */
export class GreenroomAvatar extends HTMLElement {
  #canvas = document.createElement("canvas");
  #stop = null;
  #track = null;

  connectedCallback() {
    if (!this.#canvas.isConnected) {
      this.#canvas.style.display = "block";
      this.#canvas.style.width = "100%";
      this.appendChild(this.#canvas);
    }
    this.#start();
  }

  disconnectedCallback() {
    this.#stop?.();
    this.#stop = null;
  }

  get canvas() {
    return this.#canvas;
  }

  get track() {
    return this.#track;
  }

  set track(value) {
    this.#track = value;
    this.#stop?.();
    this.#stop = null;
    if (this.isConnected) this.#start();
  }

  #start() {
    if (this.#track && !this.#stop) this.#stop = drawTransparent(this.#track, this.#canvas);
  }
}

if (!customElements.get("greenroom-avatar")) customElements.define("greenroom-avatar", GreenroomAvatar);
