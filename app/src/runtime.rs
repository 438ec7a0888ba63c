//! The on-device model runtime (the `infer` crate, a separate wasm module) as the try and
//! preview pages use it, through the small bridge in `js/runtime.js`.

use serde::Deserialize;
use shared::predict::{Corners, ImageMeta, Prediction};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/runtime.js")]
extern "C" {
    #[wasm_bindgen(catch, js_name = loadClassifier)]
    async fn load_classifier(url: &str, backend: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = classifyImage)]
    async fn classify_image(classifier: &JsValue, bytes: &[u8]) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = classifyFrame)]
    async fn classify_frame(
        classifier: &JsValue,
        video: &web_sys::HtmlVideoElement,
        canvas: &web_sys::HtmlCanvasElement,
    ) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = startCamera)]
    pub async fn start_camera(video: &web_sys::HtmlVideoElement) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = stopCamera)]
    pub fn stop_camera(video: &web_sys::HtmlVideoElement);
    #[wasm_bindgen(js_name = nextFrame)]
    async fn next_frame_promise() -> JsValue;
}

/// A model loaded in this browser.
#[derive(Clone)]
pub struct Classifier {
    handle: JsValue,
    /// `webgpu` or `cpu`.
    pub backend: String,
    /// From the request to a model ready to answer (including the first, warm-up, run).
    pub load_ms: f64,
    /// Bytes on the wire (gzip), 0 when unknown.
    pub transferred: u64,
    /// Bytes of the artifact after gzip.
    pub bytes: u64,
    /// Came from the browser's cache.
    pub cached: bool,
}

/// One answer: the predict API's `body` and `meta`, the same JSON text, and the time taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub body: Vec<Prediction>,
    pub meta: ImageMeta,
    /// `{"body":[...],"meta":{...}}` exactly as the runtime produced it.
    pub json: String,
    pub ms: f64,
}

impl Answer {
    /// The body with every box relative to the picture (OCR answers in pixels), for drawing
    /// over it at any size.
    pub fn relative_body(&self) -> Vec<Prediction> {
        let (w, h) = (
            f64::from(self.meta.width.max(1)),
            f64::from(self.meta.height.max(1)),
        );
        self.body
            .iter()
            .cloned()
            .map(|mut p| {
                if let Some(Corners::Pixels(px)) = p.pos {
                    p.pos = Some(Corners::Relative(
                        px.map(|[x, y]| [x as f64 / w, y as f64 / h]),
                    ));
                }
                p
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct Parsed {
    body: Vec<Prediction>,
    meta: ImageMeta,
}

fn field(v: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(v, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

/// The message of a thrown JS error (or whatever was thrown).
pub fn message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

fn answer(v: &JsValue) -> Result<Option<Answer>, String> {
    if v.is_null() || v.is_undefined() {
        return Ok(None);
    }
    let json = field(v, "json").as_string().unwrap_or_default();
    let parsed: Parsed = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    Ok(Some(Answer {
        body: parsed.body,
        meta: parsed.meta,
        json,
        ms: field(v, "ms").as_f64().unwrap_or(0.0),
    }))
}

impl Classifier {
    /// Fetches (or takes from the cache) the web artifact at `url` and loads it on `backend`.
    pub async fn load(url: &str, backend: &str) -> Result<Self, String> {
        let v = load_classifier(url, backend)
            .await
            .map_err(|e| message(&e))?;
        let num = |k: &str| field(&v, k).as_f64().unwrap_or(0.0);
        Ok(Self {
            handle: field(&v, "classifier"),
            backend: field(&v, "backend").as_string().unwrap_or_default(),
            load_ms: num("loadMs"),
            transferred: num("transferred") as u64,
            bytes: num("bytes") as u64,
            cached: field(&v, "cached").as_bool().unwrap_or(false),
        })
    }

    /// Classifies an encoded image (JPG, PNG, BMP), exactly as the predict API would.
    pub async fn classify(&self, bytes: &[u8]) -> Result<Answer, String> {
        let v = classify_image(&self.handle, bytes)
            .await
            .map_err(|e| message(&e))?;
        answer(&v)?.ok_or_else(|| "no answer".to_owned())
    }

    /// Classifies the video's current frame; `None` before the first frame arrived.
    pub async fn classify_frame(
        &self,
        video: &web_sys::HtmlVideoElement,
        canvas: &web_sys::HtmlCanvasElement,
    ) -> Result<Option<Answer>, String> {
        let v = classify_frame(&self.handle, video, canvas)
            .await
            .map_err(|e| message(&e))?;
        answer(&v)
    }
}

/// Resolves at the browser's next animation frame.
pub async fn next_frame() {
    next_frame_promise().await;
}
