// Client-side chroma key: draws a <video> onto a WebGL canvas with the key colour made
// transparent (distance in CbCr, soft edge, spill pulled back to grey). Falls back to a
// 2D canvas with the same maths when WebGL is not available.

const VERT = `
attribute vec2 pos;
varying vec2 uv;
void main() {
  uv = vec2((pos.x + 1.0) * 0.5, (1.0 - pos.y) * 0.5);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;

const FRAG = `
precision mediump float;
uniform sampler2D frame;
uniform vec2 keyCbCr;
uniform float lo;
uniform float hi;
varying vec2 uv;
vec2 cbcr(vec3 c) {
  return vec2(-0.168736 * c.r - 0.331264 * c.g + 0.5 * c.b,
               0.5 * c.r - 0.418688 * c.g - 0.081312 * c.b);
}
void main() {
  vec3 c = texture2D(frame, uv).rgb;
  vec2 d = cbcr(c) - keyCbCr;
  float alpha = smoothstep(lo, hi, length(d));
  // Despill: remove the part of the chroma that points towards the key colour.
  vec2 k = normalize(keyCbCr + 1e-6);
  float spill = max(0.0, dot(cbcr(c), k)) * (1.0 - alpha * 0.5);
  float y = dot(c, vec3(0.299, 0.587, 0.114));
  vec3 grey = vec3(y);
  vec3 outc = mix(c, grey, clamp(spill * 2.0, 0.0, 1.0));
  gl_FragColor = vec4(outc * alpha, alpha);
}`;

export function hexToRgb(hex: string): [number, number, number] | null {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) return null;
  const n = parseInt(m[1], 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function cbcr(r: number, g: number, b: number): [number, number] {
  return [-0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b];
}

export class CanvasKeyer {
  private gl: WebGLRenderingContext | null = null;
  private ctx2d: CanvasRenderingContext2D | null = null;
  private uniforms: Record<string, WebGLUniformLocation | null> = {};
  private raf = 0;
  private key: [number, number, number] = [0, 177, 64];
  private lo = 0.08;
  private hi = 0.16;

  constructor(
    private canvas: HTMLCanvasElement,
    public video: HTMLVideoElement,
  ) {
    const gl = canvas.getContext("webgl", { premultipliedAlpha: true, alpha: true });
    if (gl) this.initGl(gl);
    else this.ctx2d = canvas.getContext("2d", { willReadFrequently: true });
  }

  get usesWebGl(): boolean {
    return this.gl !== null;
  }

  setKeyColor(hex: string | undefined): void {
    const rgb = hex ? hexToRgb(hex) : null;
    if (rgb) this.key = rgb;
  }

  start(): void {
    if (this.raf) return;
    const tick = () => {
      this.raf = requestAnimationFrame(tick);
      this.draw();
    };
    this.raf = requestAnimationFrame(tick);
  }

  stop(): void {
    cancelAnimationFrame(this.raf);
    this.raf = 0;
  }

  private initGl(gl: WebGLRenderingContext): void {
    const prog = gl.createProgram()!;
    for (const [type, src] of [
      [gl.VERTEX_SHADER, VERT],
      [gl.FRAGMENT_SHADER, FRAG],
    ] as const) {
      const sh = gl.createShader(type)!;
      gl.shaderSource(sh, src);
      gl.compileShader(sh);
      if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) return; // stay on 2D
      gl.attachShader(prog, sh);
    }
    gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) return;
    gl.useProgram(prog);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, "pos");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    for (const name of ["frame", "keyCbCr", "lo", "hi"]) {
      this.uniforms[name] = gl.getUniformLocation(prog, name);
    }
    this.gl = gl;
  }

  private draw(): void {
    const v = this.video;
    if (v.readyState < 2 || !v.videoWidth) return;
    if (this.canvas.width !== v.videoWidth || this.canvas.height !== v.videoHeight) {
      this.canvas.width = v.videoWidth;
      this.canvas.height = v.videoHeight;
    }
    const [r, g, b] = this.key;
    const [kb, kr] = cbcr(r / 255, g / 255, b / 255);
    if (this.gl) {
      const gl = this.gl;
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB, gl.RGB, gl.UNSIGNED_BYTE, v);
      gl.uniform2f(this.uniforms.keyCbCr, kb, kr);
      gl.uniform1f(this.uniforms.lo, this.lo);
      gl.uniform1f(this.uniforms.hi, this.hi);
      gl.uniform1i(this.uniforms.frame, 0);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      return;
    }
    const ctx = this.ctx2d;
    if (!ctx) return;
    ctx.drawImage(v, 0, 0);
    const img = ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
    const px = img.data;
    const span = this.hi - this.lo;
    for (let i = 0; i < px.length; i += 4) {
      const [pb, pr] = cbcr(px[i] / 255, px[i + 1] / 255, px[i + 2] / 255);
      const d = Math.hypot(pb - kb, pr - kr);
      const t = Math.min(1, Math.max(0, (d - this.lo) / span));
      px[i + 3] = Math.round(255 * t * t * (3 - 2 * t));
    }
    ctx.putImageData(img, 0, 0);
  }
}
