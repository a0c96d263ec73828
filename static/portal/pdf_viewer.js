// PDF lessons: draws each page with the committed copy of PDF.js and marks
// a page seen once it filled half of the viewer, or half of it showed, for
// a second. The heartbeat script (lesson.js) sends the pages seen with its
// next heartbeat.
// If PDF.js cannot load the file, the browser's own viewer stays in place.

const viewer = document.getElementById("pdf-viewer");
const tracker = document.getElementById("lesson-tracker");

// How long half of a page must stay in view before it counts as seen.
const SEEN_AFTER_MS = 1000;
// Pages are drawn at this width in CSS pixels, and sharper on dense screens.
const PAGE_WIDTH = 800;
// Visibility changes are reported in steps of a tenth of the page.
const THRESHOLDS = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

// A page is in view when it fills half of the viewer, or half of it shows:
// a page taller than the viewer can never show whole.
function isMostlyInView(entry) {
  if (!entry.isIntersecting || !entry.rootBounds) {
    return false;
  }
  const needed = Math.min(entry.boundingClientRect.height, entry.rootBounds.height) / 2;
  return entry.intersectionRect.height >= needed;
}

async function showPages() {
  const pdfjs = await import(viewer.dataset.libraryUrl);
  pdfjs.GlobalWorkerOptions.workerSrc = viewer.dataset.workerUrl;
  const pdf = await pdfjs.getDocument({ url: viewer.dataset.url }).promise;

  const seen = new Set();
  const pages = document.createElement("div");
  pages.className = "pdf-pages";
  pages.tabIndex = 0;
  pages.setAttribute("role", "region");
  pages.setAttribute("aria-label", `PDF, ${pdf.numPages} pages`);
  const canvases = [];
  for (let number = 1; number <= pdf.numPages; number += 1) {
    const canvas = document.createElement("canvas");
    canvas.className = "pdf-page";
    canvas.dataset.page = String(number);
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `Page ${number} of ${pdf.numPages}`);
    // A placeholder size until the page is drawn, so the pages below stay below.
    canvas.style.aspectRatio = "210 / 297";
    pages.append(canvas);
    canvases.push(canvas);
  }
  viewer.replaceChildren(pages);
  tracker.dataset.pageCount = String(pdf.numPages);

  const drawn = new Set();
  async function draw(canvas) {
    const number = Number(canvas.dataset.page);
    if (drawn.has(number)) {
      return;
    }
    drawn.add(number);
    const page = await pdf.getPage(number);
    const scale = PAGE_WIDTH / page.getViewport({ scale: 1 }).width;
    const viewport = page.getViewport({ scale: scale * (window.devicePixelRatio || 1) });
    canvas.width = viewport.width;
    canvas.height = viewport.height;
    canvas.style.aspectRatio = `${viewport.width} / ${viewport.height}`;
    await page.render({ canvasContext: canvas.getContext("2d"), canvas: canvas, viewport: viewport }).promise;
  }

  const timers = new Map();
  function markSeen(number) {
    seen.add(number);
    tracker.dataset.pagesSeen = Array.from(seen).sort((a, b) => a - b).join(",");
  }

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const number = Number(entry.target.dataset.page);
      if (entry.isIntersecting) {
        draw(entry.target);
      }
      const inView = isMostlyInView(entry);
      if (inView && !timers.has(number) && !seen.has(number)) {
        timers.set(number, setTimeout(() => markSeen(number), SEEN_AFTER_MS));
      } else if (!inView && timers.has(number)) {
        clearTimeout(timers.get(number));
        timers.delete(number);
      }
    }
  }, { root: pages, threshold: THRESHOLDS });
  for (const canvas of canvases) {
    observer.observe(canvas);
  }
}

if (viewer && tracker) {
  showPages().catch((error) => {
    // The <object> with the browser's viewer is still in the page.
    console.warn("PDF.js could not show the lesson's PDF:", error);
  });
}
