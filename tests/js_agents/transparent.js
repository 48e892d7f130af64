// The transparent-avatar test page: join the room, find the compositor's alpha_packed track
// (participant attribute greenroom.output) and hand it to <greenroom-avatar>.
import { Room, RoomEvent, Track } from "livekit-client";
import "../../src/greenroom/web/static/greenroom-transparent.js";

const q = new URLSearchParams(location.hash.slice(1));
const room = new Room({ adaptiveStream: false, dynacast: false });
const element = document.querySelector("greenroom-avatar");
room.on(RoomEvent.TrackSubscribed, (track, pub, participant) => {
  if (
    track.kind === Track.Kind.Video &&
    pub.trackName === "greenroom" &&
    participant.attributes["greenroom.output"] === "alpha_packed"
  ) {
    element.track = track.mediaStreamTrack;
    window.packedFrom = participant.identity;
  }
});
await room.connect(q.get("url"), q.get("token"));
