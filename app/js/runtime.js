// The bridge between the app and the model runtime (`infer/`, a separate wasm module served
// at /infer/). The runtime is imported only when a page needs it, so other pages stay small.
// Also the browser APIs the try and preview pages need that are awkward from Rust: the
// Cache API, the camera, and frame grabbing.

let runtime;

function loadRuntime() {
  if (!runtime) {
    runtime = import('/infer/infer.js').then(async (m) => {
      await m.default();
      return m;
    });
  }
  return runtime;
}

// Why a fetch failed, in the server's words when it gave any.
async function failure(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `the server answered ${res.status}`;
}

// Fetches a model's web artifact, from the browser's cache when it is there (artifacts never
// change; the cache key leaves out the preview token, which only grants access), and loads
// it onto `backend` (`auto`, `webgpu` or `cpu`). Resolves to the classifier and figures.
export async function loadClassifier(url, backend) {
  const m = await loadRuntime();
  const t0 = performance.now();
  const key = url.replace(/[?&]preview=[^&]*/, '');
  // The Cache API exists only in secure contexts (HTTPS, localhost).
  const cache = self.caches ? await caches.open('autolearn-models-v1') : null;
  let res = cache ? await cache.match(key) : undefined;
  const cached = !!res;
  if (!res) {
    res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(await failure(res));
    if (cache) await cache.put(key, res.clone());
  }
  // With gzip on the wire, Content-Length is what was transferred.
  const transferred = Number(res.headers.get('content-length') || 0);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const t1 = performance.now();
  const classifier = await m.Classifier.load(bytes, backend);
  const t2 = performance.now();
  return {
    classifier,
    backend: classifier.backend,
    fetchMs: t1 - t0,
    loadMs: t2 - t0,
    cached,
    transferred,
    bytes: bytes.length,
  };
}

// Classifies an encoded image; resolves to `{ json, ms }` (`json`: `{"body":[..],"meta":{..}}`).
export async function classifyImage(classifier, bytes) {
  const t0 = performance.now();
  const json = await classifier.classifyImage(bytes);
  return { json, ms: performance.now() - t0 };
}

// Classifies the video's current frame (drawn on `canvas` at most 640 px wide).
export async function classifyFrame(classifier, video, canvas) {
  const w = video.videoWidth;
  const h = video.videoHeight;
  if (!w || !h) return null;
  const scale = Math.min(1, 640 / w);
  canvas.width = Math.round(w * scale);
  canvas.height = Math.round(h * scale);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const t0 = performance.now();
  const json = await classifier.classifyRgba(new Uint8Array(pixels.buffer), canvas.width, canvas.height);
  return { json, ms: performance.now() - t0 };
}

// Starts the rear camera (any camera if there is no rear one) in `video`.
export async function startCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error('this browser gives no camera access here (it needs HTTPS)');
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: 'environment' } },
    audio: false,
  });
  video.srcObject = stream;
  video.muted = true;
  video.playsInline = true;
  await video.play();
}

export function stopCamera(video) {
  const stream = video && video.srcObject;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (video) video.srcObject = null;
}

// Resolves at the next animation frame.
export function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => resolve()));
}
