// A LiveKit agents frontend as app builders write it: LiveKitRoom + useVoiceAssistant, and the
// agent's video drawn with <VideoTrack>. The browser tests open it against a Greenroom room and
// read window.picked (what the hook chose) and the <video> element's pixels.
import {
  LiveKitRoom,
  VideoTrack,
  useRoomContext,
  useVoiceAssistant,
} from "@livekit/components-react";
import { useEffect } from "react";
import { createRoot } from "react-dom/client";

function Agent() {
  const room = useRoomContext();
  window.lkRoom = room; // the tests read publications' permissionStatus from it
  const { agent, videoTrack } = useVoiceAssistant();
  useEffect(() => {
    window.picked = {
      agent: agent?.identity ?? null,
      participant: videoTrack?.participant?.identity ?? null,
      track: videoTrack?.publication?.trackName ?? null,
    };
  }, [agent, videoTrack]);
  return videoTrack ? <VideoTrack id="video" trackRef={videoTrack} /> : <p>waiting for the agent</p>;
}

const q = new URLSearchParams(location.hash.slice(1));
createRoot(document.getElementById("root")).render(
  <LiveKitRoom
    serverUrl={q.get("url")}
    token={q.get("token")}
    connect={true}
    audio={false}
    video={false}
    options={{ adaptiveStream: false, dynacast: false }}
  >
    <Agent />
  </LiveKitRoom>,
);
