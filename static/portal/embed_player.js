// Embedded YouTube and Vimeo players: reads their position over postMessage
// and offers it with the fields lesson.js reads from a <video> element
// (currentTime, duration, paused, ended, readyState, and pause, ended and
// loadedmetadata events). No script is loaded from the video host: only
// the player in the frame comes from there.
//
// YouTube's player sends "infoDelivery" messages once the page posts
// {"event": "listening"}, as its own iframe API does. Vimeo's player sends
// the events the page asks for with {"method": "addEventListener"} after
// its "ready" message (Vimeo's documented postMessage API).
// tests/browser/test_embedded_video.py exercises both protocols against
// local stand-ins of the players, since the video hosts cannot be reached
// from the tests. A player that sends nothing leaves the lesson with Mark
// complete and no resume position.
(function () {
  "use strict";

  const HAVE_METADATA = 1;
  const YOUTUBE_PLAYING = 1;
  const YOUTUBE_PAUSED = 2;
  const YOUTUBE_ENDED = 0;

  function parse(data) {
    if (typeof data !== "string") {
      return data;
    }
    try {
      return JSON.parse(data);
    } catch (error) {
      return null;
    }
  }

  function embedPlayer(frame) {
    const origin = new URL(frame.src).origin;
    const isYouTube = origin.endsWith("youtube-nocookie.com");
    const player = new EventTarget();
    player.currentTime = NaN;
    player.duration = NaN;
    player.paused = true;
    player.ended = false;
    player.readyState = 0;
    player.dataset = frame.dataset;

    function post(message) {
      frame.contentWindow.postMessage(JSON.stringify(message), origin);
    }

    // The first report of playback makes the position trustworthy: before
    // it, a player may still report 0 while it seeks to the start time.
    function started() {
      if (player.readyState < HAVE_METADATA) {
        player.readyState = HAVE_METADATA;
        player.dispatchEvent(new Event("loadedmetadata"));
      }
    }

    function setState(paused, ended) {
      const wasPaused = player.paused;
      const wasEnded = player.ended;
      player.paused = paused;
      player.ended = ended;
      if (ended && !wasEnded) {
        player.dispatchEvent(new Event("ended"));
      } else if (paused && !wasPaused) {
        player.dispatchEvent(new Event("pause"));
      }
    }

    function onYouTube(message) {
      if (message.event !== "infoDelivery" && message.event !== "initialDelivery") {
        return;
      }
      const info = message.info || {};
      if (Number.isFinite(info.duration) && info.duration > 0) {
        player.duration = info.duration;
      }
      if (Number.isFinite(info.currentTime)) {
        player.currentTime = info.currentTime;
      }
      if (info.playerState === YOUTUBE_PLAYING) {
        started();
        setState(false, false);
      } else if (info.playerState === YOUTUBE_PAUSED) {
        setState(true, false);
      } else if (info.playerState === YOUTUBE_ENDED) {
        setState(true, true);
      }
    }

    function subscribeToVimeo() {
      for (const name of ["timeupdate", "play", "pause", "ended"]) {
        post({ method: "addEventListener", value: name });
      }
    }

    function onVimeo(message) {
      if (message.event === "ready") {
        subscribeToVimeo();
        return;
      }
      const data = message.data || {};
      if (Number.isFinite(data.duration) && data.duration > 0) {
        player.duration = data.duration;
      }
      if (Number.isFinite(data.seconds)) {
        player.currentTime = data.seconds;
      }
      if (message.event === "play") {
        started();
        setState(false, false);
      } else if (message.event === "pause") {
        setState(true, false);
      } else if (message.event === "ended") {
        setState(true, true);
      }
    }

    window.addEventListener("message", (event) => {
      if (event.origin !== origin || event.source !== frame.contentWindow) {
        return;
      }
      const message = parse(event.data);
      if (message && typeof message === "object") {
        (isYouTube ? onYouTube : onVimeo)(message);
      }
    });
    if (isYouTube) {
      // Posted now and again on load, because the frame may have loaded
      // before this deferred script ran. The browser drops a message to a
      // frame that has not loaded the player yet.
      const listen = () => post({ event: "listening", id: frame.id, channel: "widget" });
      listen();
      frame.addEventListener("load", listen);
    } else {
      // The player's "ready" message is missed when the frame loaded before
      // this deferred script ran, so the page also subscribes on its own.
      // A second subscription to the same event changes nothing.
      subscribeToVimeo();
      frame.addEventListener("load", subscribeToVimeo);
    }
    return player;
  }

  window.nudgepathEmbedPlayer = embedPlayer;
})();
