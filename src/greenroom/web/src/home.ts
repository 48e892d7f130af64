// The home page: lists sessions and starts one from a template, through the JSON API.
// The API key comes from the link the demo prints (#key=...) or the form, and is kept in
// sessionStorage (this tab only), never in the URL after it is read.

interface Template {
  id: string;
  name: string;
  provider: string;
  background: string;
}
interface SessionRow {
  session_id: string;
  status: string;
  stop_reason: string | null;
  template_name: string;
  created_at: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const KEY = "greenroom.api_key";

function takeKeyFromFragment(): void {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const key = params.get("key");
  if (key) {
    sessionStorage.setItem(KEY, key);
    history.replaceState(null, "", location.pathname);
  }
}

class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  const key = sessionStorage.getItem(KEY);
  if (key) headers.set("Authorization", `Bearer ${key}`);
  if (init.body) headers.set("Content-Type", "application/json");
  const res = await fetch(path, { ...init, headers });
  if (!res.ok) {
    let message = res.statusText;
    try {
      message = (await res.json())?.error?.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, message);
  }
  return res.json() as Promise<T>;
}

function show(message: string): void {
  const el = $("message");
  el.hidden = !message;
  el.textContent = message;
}

function handle(err: unknown): void {
  if (err instanceof ApiError && err.status === 401) {
    $("key-box").hidden = false;
    show(`The API needs a key: ${err.message}`);
  } else {
    show(err instanceof Error ? err.message : String(err));
  }
}

async function loadTemplates(): Promise<void> {
  const { templates } = await api<{ templates: Template[] }>("/v1/templates");
  const select = $<HTMLSelectElement>("template");
  select.replaceChildren(
    ...templates.map((t) => {
      const o = document.createElement("option");
      o.value = t.id;
      o.textContent = `${t.name} (${t.provider}, ${t.background})`;
      return o;
    }),
  );
  $<HTMLButtonElement>("start-go").disabled = templates.length === 0;
  if (!templates.length) $("start-msg").textContent = "No templates yet: POST /v1/templates to make one.";
}

async function openViewer(sessionId: string): Promise<void> {
  const { viewer_url } = await api<{ viewer_url: string }>(
    `/viewer/${encodeURIComponent(sessionId)}/api/link`,
    { method: "POST" },
  );
  location.assign(viewer_url);
}

async function loadSessions(): Promise<void> {
  const { sessions } = await api<{ sessions: SessionRow[] }>("/v2/streaming/sessions?limit=50");
  const body = $("sessions");
  if (!sessions.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 4;
    td.className = "hint";
    td.textContent = "No sessions yet: start one above.";
    tr.appendChild(td);
    body.replaceChildren(tr);
    return;
  }
  body.replaceChildren(
    ...sessions.map((s) => {
      const tr = document.createElement("tr");
      const live = s.status === "started" || s.status === "starting";
      const cells = [
        s.session_id,
        s.stop_reason ? `${s.status} (${s.stop_reason})` : s.status,
        s.template_name,
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      const td = document.createElement("td");
      if (live) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = "Open viewer";
        b.addEventListener("click", () => openViewer(s.session_id).catch(handle));
        td.appendChild(b);
      }
      tr.appendChild(td);
      return tr;
    }),
  );
}

async function start(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  const button = $<HTMLButtonElement>("start-go");
  button.disabled = true;
  $("start-msg").textContent = "Starting…";
  try {
    const text = $<HTMLInputElement>("text").value.trim();
    const body: Record<string, string> = { template_id: $<HTMLSelectElement>("template").value };
    if (text) body.text = text;
    const started = await api<{ viewer_url: string }>("/v2/streaming/sessions", {
      method: "POST",
      body: JSON.stringify(body),
    });
    location.assign(started.viewer_url);
  } catch (err) {
    $("start-msg").textContent = "";
    handle(err);
  } finally {
    button.disabled = false;
  }
}

async function refresh(): Promise<void> {
  try {
    await loadTemplates();
    await loadSessions();
    show("");
  } catch (err) {
    handle(err);
  }
}

takeKeyFromFragment();
$<HTMLFormElement>("start").addEventListener("submit", (ev) => start(ev as SubmitEvent));
$<HTMLFormElement>("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $<HTMLInputElement>("key").value.trim());
  $("key-box").hidden = true;
  refresh();
});
refresh();
setInterval(() => loadSessions().catch(() => undefined), 5000);
