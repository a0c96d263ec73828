// Exam countdown: shows the time left until the open attempt's deadline.
// The server decides: it rejects a submission that arrives after the
// deadline whatever this page shows. The time left is computed from the
// server's clock at render time (data-server-now) and the page's own
// monotonic clock since, so a wrong clock on the learner's computer does
// not change it.
(function () {
  "use strict";

  const timer = document.getElementById("exam-timer");
  if (!timer) {
    return;
  }
  const clock = document.getElementById("exam-timer-clock");
  const announcer = document.getElementById("exam-timer-announce");
  const secondsAtRender = Number(timer.dataset.deadline) - Number(timer.dataset.serverNow);
  const renderedAt = performance.now();

  // Screen readers hear the time left at these marks only (in seconds left),
  // not every second.
  const ANNOUNCE_AT = [1800, 1200, 900, 600, 300, 120, 60, 30, 10];
  // Below this many seconds the countdown is shown as a warning.
  const WARN_BELOW = 60;

  function secondsLeft() {
    const passed = (performance.now() - renderedAt) / 1000;
    return Math.max(0, Math.ceil(secondsAtRender - passed));
  }

  function format(seconds) {
    const minutes = Math.floor(seconds / 60);
    const rest = String(seconds % 60).padStart(2, "0");
    return `${minutes}:${rest}`;
  }

  function spoken(seconds) {
    if (seconds >= 60) {
      const minutes = Math.round(seconds / 60);
      return `${minutes} minute${minutes === 1 ? "" : "s"} left to submit.`;
    }
    return `${seconds} seconds left to submit.`;
  }

  // Marks at or above the time left when the page opened are not announced,
  // because the visible countdown already shows that time.
  const announced = new Set(ANNOUNCE_AT.filter((mark) => mark >= secondsLeft()));
  let finished = false;

  function announce(left) {
    const due = ANNOUNCE_AT.filter((mark) => mark >= left && !announced.has(mark));
    if (due.length === 0) {
      return;
    }
    for (const mark of due) {
      announced.add(mark);
    }
    announcer.textContent = spoken(left);
  }

  function tick() {
    if (finished) {
      return;
    }
    const left = secondsLeft();
    clock.textContent = format(left);
    timer.classList.toggle("exam-timer-warning", left <= WARN_BELOW);
    if (left > 0) {
      announce(left);
      return;
    }
    finished = true;
    timer.dataset.expired = "true";
    announcer.textContent = "Time is up. Answers submitted now are not accepted.";
    document.getElementById("exam-timer-expired").hidden = false;
  }

  timer.hidden = false;
  tick();
  setInterval(tick, 1000);
})();
