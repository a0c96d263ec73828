// Lesson page: reports active time to the server in heartbeats, saves a
// video's position, and resumes the video where the learner left off.
// The server caps what it counts (courses/heartbeats.py); this script only
// decides when the learner is active.
(function () {
  "use strict";

  const tracker = document.getElementById("lesson-tracker");
  if (!tracker) {
    return;
  }
  const url = tracker.dataset.heartbeatUrl;
  const view = tracker.dataset.view;
  const intervalMs = (Number(tracker.dataset.interval) || 15) * 1000;
  const csrfToken = tracker.querySelector("input[name=csrfmiddlewaretoken]").value;
  // An uploaded video, or an embedded YouTube or Vimeo player read through
  // embed_player.js, which offers the same fields.
  const embed = document.getElementById("lesson-embed");
  const video = document.getElementById("lesson-video") ||
    (embed && window.nudgepathEmbedPlayer ? window.nudgepathEmbedPlayer(embed) : null);

  // Without input for this long, a learner who is not watching the video
  // counts as away.
  const IDLE_AFTER_MS = 60 * 1000;

  let lastInputAt = Date.now();
  let activeSeconds = 0;
  let sequence = 0;
  let lastSentPosition = null;
  let stopped = false;
  // Heartbeats are sent one after another, so they arrive in sequence order.
  let queue = Promise.resolve();

  for (const name of ["pointerdown", "pointermove", "keydown", "scroll", "wheel", "touchstart"]) {
    document.addEventListener(name, () => { lastInputAt = Date.now(); }, { passive: true, capture: true });
  }

  function isPlaying() {
    return Boolean(video) && !video.paused && !video.ended;
  }

  function isActive() {
    if (document.visibilityState !== "visible") {
      return false;
    }
    return isPlaying() || Date.now() - lastInputAt < IDLE_AFTER_MS;
  }

  // Set once the video starts at the saved position, so that a heartbeat
  // sent before then cannot overwrite that position with 0.
  let positionReady = false;

  function currentPosition() {
    if (!video || !positionReady || !Number.isFinite(video.currentTime)) {
      return null;
    }
    return Math.floor(video.currentTime);
  }

  // PDF lessons: pdf_viewer.js keeps the pages seen in the tracker's data.
  let lastSentPages = "";

  function hasNews() {
    const pagesSeen = tracker.dataset.pagesSeen || "";
    return activeSeconds > 0 || currentPosition() !== lastSentPosition || pagesSeen !== lastSentPages;
  }

  // Builds the next heartbeat and starts counting the next interval.
  function nextBeat() {
    sequence += 1;
    const data = new URLSearchParams({
      view: view,
      sequence: String(sequence),
      active_seconds: String(activeSeconds),
      csrfmiddlewaretoken: csrfToken,
    });
    const position = currentPosition();
    if (position !== null) {
      data.set("position", String(position));
      lastSentPosition = position;
      // The server needs the duration to tell when 90% has been watched.
      if (Number.isFinite(video.duration) && video.duration >= 1) {
        data.set("duration", String(Math.floor(video.duration)));
      }
    }
    if (tracker.dataset.pageCount) {
      data.set("page_count", tracker.dataset.pageCount);
      data.set("pages", tracker.dataset.pagesSeen || "");
      lastSentPages = tracker.dataset.pagesSeen || "";
    }
    activeSeconds = 0;
    return data;
  }

  function showResult(result) {
    tracker.dataset.timeSpent = String(result.time_spent_seconds);
    tracker.dataset.accepted = String(result.accepted);
    const videoProgress = document.getElementById("video-progress");
    if (result.completed && videoProgress && !tracker.dataset.completed) {
      tracker.dataset.completed = "true";
      videoProgress.textContent = "You have watched this video. The lesson is completed.";
    }
    // A newer view of this lesson (another tab) now counts the time.
    if (result.reason === "superseded") {
      stopped = true;
    }
  }

  function send() {
    if (stopped || !hasNews()) {
      return;
    }
    const body = nextBeat();
    queue = queue
      .then(() => fetch(url, { method: "POST", body: body, credentials: "same-origin" }))
      .then((response) => (response.ok ? response.json() : null))
      .then((result) => { if (result) { showResult(result); } })
      .catch(() => { /* A lost heartbeat loses at most one interval. */ });
  }

  // Leaving the page: the browser may cancel a fetch, so use a beacon.
  function sendOnLeave() {
    if (stopped || !hasNews()) {
      return;
    }
    navigator.sendBeacon(url, nextBeat());
  }

  // Whether the video played since the last one-second tick.
  let playedSinceTick = false;

  setInterval(() => {
    if (isActive()) {
      activeSeconds += 1;
    }
    playedSinceTick = isPlaying();
  }, 1000);
  setInterval(send, intervalMs);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      sendOnLeave();
    }
  });
  window.addEventListener("pagehide", sendOnLeave);

  if (video) {
    // The position is saved when playback pauses or ends, not only on the
    // timer. The part of a second played since the last tick counts as one
    // second, because the server credits watched video only against
    // credited time (courses/video_watch.py).
    const sendPlayed = () => {
      if (activeSeconds === 0 && playedSinceTick) {
        activeSeconds = 1;
      }
      send();
    };
    video.addEventListener("pause", sendPlayed);
    video.addEventListener("ended", sendPlayed);
    const resume = () => {
      const resumeAt = Number(video.dataset.resumePosition) || 0;
      // Near the end, start again from the beginning instead. An embedded
      // player starts at the saved position by its address.
      if (!embed && resumeAt > 0 && resumeAt < video.duration - 1) {
        video.currentTime = resumeAt;
      }
      lastSentPosition = resumeAt;
      positionReady = true;
    };
    // A cached video can load its metadata before this deferred script
    // runs, and then loadedmetadata has fired already.
    if (video.readyState >= 1) {
      resume();
    } else {
      video.addEventListener("loadedmetadata", resume, { once: true });
    }
  }
})();
