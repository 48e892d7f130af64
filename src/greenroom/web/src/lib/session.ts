// What the viewer knows about its session: the link's fragment, the token's claims, and the
// small token-authenticated API under /viewer/{id}/api/ (served by greenroom.web.router).

export interface ViewerLink {
  sessionId: string;
  token: string;
  livekitUrl: string;
}

export interface SessionInfo {
  session_id: string;
  status: string; // "starting" | "started" | "stopped" | ...
  ended_reason: string | null; // why it ended, in words, the code in brackets
  stop_reason: string | null; // the code alone (docs/api.md)
  time_left: number | null; // seconds until it stops by itself, while running
  time_left_reason: string | null; // "idle_timeout" | "max_duration"
  can_restart: boolean; // the page may offer to start a new session (the demo)
  video_playout_delay_ms: number; // the room's lip-sync delay (0: none); the page holds video as long
  room: string;
  compositor_identity: string | null;
  avatar_identity: string | null;
  background: string | null;
  metrics: Record<string, number> | null;
}

export interface LibraryItem {
  id: string;
  name: string;
  kind: string; // "image" | "video"
  spec: string; // what to send in greenroom.set_background
  thumbnail_url: string | null;
}

/** A failure the page shows as it is: a title and one sentence. */
export class ViewerError extends Error {
  constructor(
    public title: string,
    message: string,
    public status = 0,
  ) {
    super(message);
  }
}

/** Read /viewer/{id}#token=...&url=... ; the fragment never reaches a server log. */
export function parseLink(loc: Location): ViewerLink {
  const m = loc.pathname.match(/^\/viewer\/([^/]+)\/?$/);
  const sessionId = m ? decodeURIComponent(m[1]) : "";
  const params = new URLSearchParams(loc.hash.replace(/^#/, ""));
  const token = params.get("token") ?? "";
  let livekitUrl = params.get("url") ?? "";
  if (!sessionId) throw new ViewerError("No session", "This address does not name a session.");
  if (!token) {
    throw new ViewerError(
      "No access token",
      "This viewer link has no token. Open the viewer_url the API returned when the session started.",
    );
  }
  if (!livekitUrl) livekitUrl = `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.hostname}:7880`;
  return { sessionId, token, livekitUrl };
}

/** The token's payload, without verifying it (the server does that). */
export function tokenClaims(token: string): { exp?: number; sub?: string; video?: { room?: string } } {
  try {
    const part = token.split(".")[1] ?? "";
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json);
  } catch {
    throw new ViewerError("Invalid access token", "The token in this viewer link cannot be read.");
  }
}

export function checkNotExpired(token: string, now = Date.now()): void {
  const { exp } = tokenClaims(token);
  if (exp !== undefined && exp * 1000 <= now) {
    const when = new Date(exp * 1000).toLocaleString();
    throw new ViewerError(
      "Viewer link expired",
      `This viewer link expired on ${when}. Ask for a new one (GET the session from the API for a fresh viewer_url).`,
    );
  }
}

export class SessionApi {
  constructor(private link: ViewerLink) {}

  private async call(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${this.link.token}`);
    const url = `/viewer/${encodeURIComponent(this.link.sessionId)}/api${path}`;
    let res: Response;
    try {
      res = await fetch(url, { ...init, headers });
    } catch {
      throw new ViewerError("Service unreachable", "The Greenroom service did not answer.");
    }
    if (!res.ok) throw await errorFrom(res, this.link.sessionId);
    return res;
  }

  async session(): Promise<SessionInfo> {
    return (await this.call("/session")).json();
  }

  async backgrounds(): Promise<LibraryItem[]> {
    return (await this.call("/backgrounds")).json();
  }

  async thumbnail(item: LibraryItem): Promise<string | null> {
    if (!item.thumbnail_url) return null;
    const res = await this.call(`/backgrounds/${encodeURIComponent(item.id)}/thumbnail`);
    return URL.createObjectURL(await res.blob());
  }

  async upload(file: File): Promise<LibraryItem> {
    const body = new FormData();
    body.append("file", file, file.name);
    return (await this.call("/backgrounds", { method: "POST", body })).json();
  }

  async speak(text: string, mode: string): Promise<void> {
    await this.call("/speak", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text, mode }),
    });
  }

  async interrupt(): Promise<void> {
    await this.call("/interrupt", { method: "POST" });
  }

  /** Start a new session from the same template (only where it is offered); its viewer URL. */
  async restart(): Promise<string> {
    const body = await (await this.call("/restart", { method: "POST" })).json();
    return body.viewer_url as string;
  }
}

async function errorFrom(res: Response, sessionId: string): Promise<ViewerError> {
  let message = res.statusText;
  try {
    const body = await res.json();
    message = body?.error?.message ?? message;
  } catch {
    /* not JSON */
  }
  if (res.status === 404) {
    return new ViewerError("Session not found", `There is no session "${sessionId}" on this server.`, 404);
  }
  if (res.status === 401 || res.status === 403) {
    return new ViewerError("Access denied", message, res.status);
  }
  return new ViewerError("Request failed", message, res.status);
}
