"""The viewer page's lip-sync balance (``web/src/lib/lip_sync.ts``), run in Node from the
bundle the page and the A/V benchmark load: statistics reports in, playout-delay requests out.

What a user would see: while the browser holds the voice no longer than a quiet machine
does, the picture keeps the room's delay; when it holds the voice longer, the picture waits
that much longer too, within a bound, and a new receiver (counters back at zero) moves
nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from greenroom.web.router import BUNDLE

pytestmark = pytest.mark.unit

LIP_SYNC_JS = BUNDLE / "lib" / "lip_sync.js"

# Feeds the balance a sequence of audio windows: [mean buffering ms per sample, or "reset"
# for a new receiver, or "early" for a reading inside the window]; prints the delay the
# video receiver was asked for after each step.
SCRIPT = """
const { PlayoutBalance, QUIET_AUDIO_MS, MAX_EXTRA_MS, WINDOW_MS } = await import(process.argv[1]);
const steps = JSON.parse(process.argv[2]);
const asked = [];
const video = { setPlayoutDelay: (s) => asked.push(Math.round(s * 1000)) };
const b = new PlayoutBalance(video, 70);
let t = 0, delay = 0, emitted = 0;
const report = () => new Map([["a", { type: "inbound-rtp", kind: "audio",
  jitterBufferDelay: delay, jitterBufferEmittedCount: emitted }]]);
b.update(report(), t);
const after = [];
for (const s of steps) {
  if (s === "reset") { delay = 0; emitted = 0; t += WINDOW_MS; }
  else if (s === "early") { emitted += 48000; delay += 48000 * 0.5; t += WINDOW_MS / 4; }
  else { emitted += 96000; delay += (96000 * s) / 1000; t += WINDOW_MS; }
  b.update(report(), t);
  after.push(b.delayMs);
}
console.log(JSON.stringify({ after, asked, quiet: QUIET_AUDIO_MS, max: MAX_EXTRA_MS }));
"""


def run_balance(steps: list[object]) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (make setup installs it with the viewer's build)")
    out = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, LIP_SYNC_JS.as_uri(), json.dumps(steps)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_a_quiet_voice_leaves_the_room_delay() -> None:
    r = run_balance([25, 32, 38, 30, 40, 35])
    assert r["after"] == [70] * 6
    assert r["asked"] == [70], "the page asks once, for the room's delay"


def test_a_voice_held_longer_holds_the_picture_longer() -> None:
    r = run_balance([110] * 8)
    # 110 ms held against the 40 a quiet machine holds: the picture waits ~70 ms more,
    # reached step by step (smoothed), never overshooting
    assert r["after"] == sorted(r["after"]), r["after"]
    assert 135 <= r["after"][-1] <= 140, r["after"]
    assert r["after"][0] > 70


def test_the_extra_delay_is_bounded_and_comes_back_down() -> None:
    r = run_balance([900] * 10 + [30] * 10)
    top = 70 + r["max"]  # approached step by step: within the 5 ms worth a new request
    assert top - 5 <= max(r["after"]) <= top, r["after"]
    assert r["after"][-1] <= 75, r["after"]


def test_a_new_receiver_or_a_short_window_moves_nothing() -> None:
    r = run_balance(["early", "reset", 30, "early", "early"])
    assert r["after"] == [70] * 5, r["after"]
    assert r["asked"] == [70]
