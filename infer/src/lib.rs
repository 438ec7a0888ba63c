//! The model runtime of the browser: the same `shared` model code and pre-processing the
//! server runs, on burn's WebGPU backend when the browser offers an adapter, otherwise on
//! the CPU executor the server's predict API runs (`shared::exec`, compiled to wasm SIMD;
//! OCR models on burn's CPU backend). Its answers have the shape of the predict API's
//! `body` and `meta` (SPEC §7), computed from bit-identical weights.
//!
//! JavaScript sees one class, `Classifier`: `await Classifier.load(webArtifact, "auto")`,
//! then `await c.classifyImage(bytes)` (an encoded JPG/PNG/BMP, decoded exactly as the
//! server decodes) or `await c.classifyRgba(pixels, width, height)` (a camera frame). It
//! runs whatever kind of model the artifact holds: a classifier answers labels with
//! confidences, a detector boxes with SPEC §7's relative corners (`pos`), decoded and
//! suppressed by the same `shared::detect` code as the server's, an OCR model the text lines
//! of the whole picture with their pixel corners (the same `OcrReader` the server serves).

use std::cell::RefCell;
use std::rc::Rc;

use burn::prelude::*;
use shared::InstanceType;
use shared::detect;
use shared::exec::detector::DetectorNet;
use shared::exec::{NativeNet, Scratch};
use shared::model::ocr::{OcrModel, OcrReader};
use shared::model::{Detector, DetectorConfig, FusedEfficientNetLite, artifact};
use shared::predict::{
    ImageMeta, Prediction, classification_body, detection_body, input, ocr_body,
};
use shared::preprocess::softmax;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The network of an artifact, by kind and where it runs.
enum Net {
    /// burn, on WebGPU.
    Classifier(Box<FusedEfficientNetLite>),
    Detector(Box<Detector>),
    /// The CPU executor (the server's kernels, wasm SIMD here): a browser without WebGPU.
    CpuClassifier(Box<NativeNet>),
    CpuDetector(Box<DetectorNet>),
    /// Reads whole pictures, not `side`-square inputs.
    Ocr(Box<OcrReader>),
}

struct Inner {
    model: Net,
    device: Device,
    labels: Vec<String>,
    side: u32,
    /// A detector's served confidence threshold (from its evaluation).
    conf_threshold: f32,
    /// The CPU executor's activation buffers, kept from image to image.
    scratch: RefCell<Scratch>,
}

#[wasm_bindgen]
pub struct Classifier {
    inner: Rc<Inner>,
    backend: String,
}

thread_local! {
    /// burn's wgpu runtime initialises once per page; later loads reuse its device.
    static GPU: RefCell<Option<Device>> = const { RefCell::new(None) };
}

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Whether `navigator.gpu` exists (the WebGPU API; an adapter may still be missing).
fn has_webgpu_api() -> bool {
    let navigator = js_sys::Reflect::get(&js_sys::global(), &"navigator".into());
    navigator
        .and_then(|n| js_sys::Reflect::get(&n, &"gpu".into()))
        .is_ok_and(|g| !g.is_undefined() && !g.is_null())
}

async fn webgpu() -> Result<Device, String> {
    if let Some(d) = GPU.with(|g| g.borrow().clone()) {
        return Ok(d);
    }
    if !has_webgpu_api() {
        return Err("this browser has no WebGPU (navigator.gpu is missing)".into());
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| format!("no WebGPU adapter: {e}"))?;
    GPU.with(|g| *g.borrow_mut() = Some(device.clone()));
    Ok(device)
}

/// `want`: `webgpu`, `cpu` or `auto` (WebGPU when it works, else CPU).
async fn pick_device(want: &str) -> Result<(Device, &'static str), JsError> {
    match want {
        "cpu" => Ok((Device::flex(), "cpu")),
        "webgpu" => webgpu().await.map(|d| (d, "webgpu")).map_err(js_err),
        "auto" => Ok(match webgpu().await {
            Ok(d) => (d, "webgpu"),
            Err(_) => (Device::flex(), "cpu"),
        }),
        other => Err(js_err(format!(
            "unknown backend {other:?}: use webgpu, cpu or auto"
        ))),
    }
}

/// A WebGPU result's floats, read back asynchronously (WebGPU cannot block; suppression
/// runs in plain Rust).
async fn read_back<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, JsError> {
    t.into_data_async()
        .await
        .map_err(|e| js_err(format!("{e:?}")))?
        .try_into_vec_as::<f32>()
        .map_err(|e| js_err(format!("{e:?}")))
}

#[derive(serde::Serialize)]
struct Answer {
    body: Vec<Prediction>,
    meta: ImageMeta,
}

impl Inner {
    /// A prepared image as burn's `[1, 3, side, side]` input on the model's device.
    fn input(&self, x: Vec<f32>) -> Tensor<4> {
        let side = self.side as usize;
        Tensor::from_data(TensorData::new(x, [1, 3, side, side]), &self.device)
    }

    async fn classify(&self, x: Vec<f32>, meta: ImageMeta) -> Result<String, JsError> {
        let side = self.side as usize;
        let out: Vec<f32> = match &self.model {
            Net::CpuClassifier(m) => m.forward(&x, 1, side, &mut self.scratch.borrow_mut()),
            Net::CpuDetector(m) => m
                .forward(&x, 1, side, &mut self.scratch.borrow_mut())
                .concat(),
            Net::Classifier(m) => read_back(m.forward(self.input(x))).await?,
            Net::Detector(m) => read_back(m.forward(self.input(x))).await?,
            Net::Ocr(_) => return Err(js_err("an OCR model reads whole pictures")),
        };
        let body = match &self.model {
            Net::Classifier(_) | Net::CpuClassifier(_) => {
                classification_body(&self.labels, &softmax(&out))
            }
            Net::Detector(_) | Net::CpuDetector(_) => {
                let points = detect::points(side);
                let dets =
                    detect::decode(&out, self.labels.len(), &points, side, self.conf_threshold);
                detection_body(&self.labels, &dets, side)
            }
            Net::Ocr(_) => unreachable!("returned above"),
        };
        let answer = Answer { body, meta };
        serde_json::to_string(&answer).map_err(js_err)
    }

    /// An OCR model's lines on a whole picture.
    async fn read(reader: &OcrReader, page: &image::RgbImage) -> Result<String, JsError> {
        let lines = reader.read_page_async(page).await.map_err(js_err)?;
        let meta = ImageMeta {
            height: page.height(),
            width: page.width(),
        };
        serde_json::to_string(&Answer {
            body: ocr_body(&lines),
            meta,
        })
        .map_err(js_err)
    }
}

#[wasm_bindgen]
impl Classifier {
    /// Loads a model from its web artifact (`GET /api/models/{id}/artifact/web`, already
    /// un-gzipped by fetch) onto `backend` (`webgpu`, `cpu` or `auto`), and runs it once so
    /// that shaders are compiled before the first real image.
    pub async fn load(web_artifact: Vec<u8>, backend: String) -> Result<Classifier, JsError> {
        let (meta, weights) = artifact::decode_web(&web_artifact).map_err(js_err)?;
        drop(web_artifact);
        let (device, name) = pick_device(&backend).await?;
        let on_cpu = name == "cpu";
        let model = match meta.instance_type {
            InstanceType::Ocr => {
                let model = artifact::load_into(OcrModel::new(&device), weights).map_err(js_err)?;
                let mut reader = OcrReader::from_model(model, meta.charset.clone(), device.clone());
                reader.max_side = meta.image_size;
                Net::Ocr(Box::new(reader))
            }
            InstanceType::ObjectDetection => {
                let config = DetectorConfig::for_preset(meta.preset);
                let shape = Detector::init(config, meta.labels.len(), &device);
                let model = artifact::load_into(shape, weights).map_err(js_err)?.valid();
                if on_cpu {
                    Net::CpuDetector(Box::new(DetectorNet::new(model)))
                } else {
                    Net::Detector(Box::new(model))
                }
            }
            _ => {
                let m =
                    artifact::load_weights(weights, meta.labels.len(), &device).map_err(js_err)?;
                let fused = FusedEfficientNetLite::new(&m.valid());
                if on_cpu {
                    Net::CpuClassifier(Box::new(NativeNet::new(&fused)))
                } else {
                    Net::Classifier(Box::new(fused))
                }
            }
        };
        let inner = Inner {
            conf_threshold: meta.conf_threshold(),
            model,
            device,
            labels: meta.labels,
            side: meta.image_size,
            scratch: RefCell::new(Scratch::default()),
        };
        if let Net::Ocr(reader) = &inner.model {
            // A blank page: the detector's shaders compile now.
            let blank = image::RgbImage::from_pixel(64, 64, image::Rgb([255, 255, 255]));
            Inner::read(reader, &blank).await?;
        } else {
            let side = inner.side as usize;
            let warm = vec![0.0; 3 * side * side];
            inner
                .classify(
                    warm,
                    ImageMeta {
                        height: 1,
                        width: 1,
                    },
                )
                .await?;
        }
        Ok(Classifier {
            inner: Rc::new(inner),
            backend: name.to_owned(),
        })
    }

    /// `webgpu` or `cpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// `image_classification`, `object_detection` or `ocr`: what the answers' `body` holds.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        match self.inner.model {
            Net::Classifier(_) | Net::CpuClassifier(_) => "image_classification".into(),
            Net::Detector(_) | Net::CpuDetector(_) => "object_detection".into(),
            Net::Ocr(_) => "ocr".into(),
        }
    }

    /// The class names, in the model's output order.
    #[wasm_bindgen(getter)]
    pub fn labels(&self) -> Vec<String> {
        self.inner.labels.clone()
    }

    /// The side of the square input, in pixels (OCR: the detector input's longer side).
    #[wasm_bindgen(getter, js_name = imageSize)]
    pub fn image_size(&self) -> u32 {
        self.inner.side
    }

    /// Classifies an encoded image (JPG, PNG, BMP), decoded and prepared exactly as the
    /// predict API does. Resolves to the JSON `{"body": [...], "meta": {...}}`.
    #[wasm_bindgen(js_name = classifyImage)]
    pub fn classify_image(&self, bytes: Vec<u8>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let refused =
                |e: shared::predict::PredictError| JsValue::from(js_err(e.body().error_msg));
            if let Net::Ocr(reader) = &inner.model {
                let (page, _) = input::decode_page(&bytes).map_err(refused)?;
                drop(bytes);
                return Ok(Inner::read(reader, &page).await.map(JsValue::from)?);
            }
            let (x, meta) = input::prepare(&bytes, inner.side).map_err(refused)?;
            drop(bytes);
            Ok(inner.classify(x, meta).await.map(JsValue::from)?)
        })
    }

    /// Classifies RGBA pixels (`width`×`height`, a video frame drawn on a canvas).
    #[wasm_bindgen(js_name = classifyRgba)]
    pub fn classify_rgba(&self, rgba: Vec<u8>, width: u32, height: u32) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let img = image::RgbaImage::from_raw(width, height, rgba).ok_or_else(|| {
                JsValue::from(js_err(format!(
                    "{width}x{height} RGBA needs {} bytes",
                    u64::from(width) * u64::from(height) * 4
                )))
            })?;
            let img = image::DynamicImage::ImageRgba8(img);
            if let Net::Ocr(reader) = &inner.model {
                return Ok(Inner::read(reader, &img.to_rgb8())
                    .await
                    .map(JsValue::from)?);
            }
            let (x, meta) = input::prepare_decoded(&img, inner.side);
            Ok(inner.classify(x, meta).await.map(JsValue::from)?)
        })
    }
}
