//! The live preview a QR code opens (`/p/:token`, SPEC §6), with no login: the model runs on
//! the phone's rear camera continuously, the top labels and their confidence over the
//! picture, frames per second below; without a camera, a photo picker instead. Expired,
//! revoked or forged links get a page that says so.

use std::sync::atomic::Ordering;

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;
use shared::predict::Prediction;
use shared::preview::PreviewInfo;

use crate::api;
use crate::format;
use crate::pages::common::{chosen_file, read_bytes};
use crate::pages::try_model::{
    BoxOverlay, PredictionList, RuntimeFacts, load_runtime, wanted_backend,
};
use crate::runtime::{self, Classifier};
use crate::timers::alive_flag;

/// Labels shown over the picture.
const TOP: usize = 3;

#[component]
pub fn PreviewPage() -> impl IntoView {
    let params = use_params_map();
    let token = params.with_untracked(|p| p.get("token").unwrap_or_default());
    let info = LocalResource::new(move || {
        let token = token.clone();
        async move { api::preview_info(&token).await }
    });
    view! {
        <section class="page preview-page" data-testid="preview-page">
            {move || match info.get() {
                None => view! { <p class="muted">"Opening the preview…"</p> }.into_any(),
                Some(Err(e)) => {
                    let title = match e.code.as_str() {
                        "preview_expired" => "This preview link has expired",
                        "preview_revoked" => "This preview link was revoked",
                        "preview_invalid" => "This preview link is not valid",
                        _ => "The preview cannot open",
                    };
                    view! {
                        <div class="refused" data-testid="preview-refused" data-code=e.code.clone()>
                            <h1>{title}</h1>
                            <p>{e.message.clone()}</p>
                            <p class="muted">"Ask whoever shared it for a new link."</p>
                        </div>
                    }
                        .into_any()
                }
                Some(Ok(info)) => view! { <Preview info=info/> }.into_any(),
            }}
        </section>
    }
}

/// What the camera loop updates.
#[derive(Clone, Copy)]
struct Live {
    top: RwSignal<Vec<Prediction>>,
    /// Frames classified per second (moving average).
    fps: RwSignal<f64>,
    frames: RwSignal<u64>,
    /// Time of the last frame's inference.
    ms: RwSignal<f64>,
}

#[component]
fn Preview(info: PreviewInfo) -> impl IntoView {
    let runtime = load_runtime(info.artifact_url.clone(), wanted_backend());
    let video = NodeRef::<html::Video>::new();
    let canvas = NodeRef::<html::Canvas>::new();
    let live = Live {
        top: RwSignal::new(Vec::new()),
        fps: RwSignal::new(0.0),
        frames: RwSignal::new(0),
        ms: RwSignal::new(0.0),
    };
    let Live {
        top,
        fps,
        frames,
        ms,
    } = live;
    // `None` while starting; `Some(Err)` when there is no camera (the photo picker shows).
    let camera = RwSignal::new(None::<Result<(), String>>);
    let photo = RwSignal::new(None::<Result<Vec<Prediction>, String>>);
    // The picked photo, shown under a detector's boxes.
    let photo_src = RwSignal::new(None::<String>);
    let alive = alive_flag();

    // Once the model is loaded: start the camera, then classify frame after frame.
    let started = StoredValue::new(false);
    Effect::new(move |_| {
        let Some(Ok(classifier)) = runtime.get() else {
            return;
        };
        if started.get_value() {
            return;
        }
        started.set_value(true);
        let (Some(v), Some(c)) = (video.get_untracked(), canvas.get_untracked()) else {
            return;
        };
        let alive = alive.clone();
        spawn_local(async move {
            if let Err(e) = runtime::start_camera(&v).await {
                camera.set(Some(Err(runtime::message(&e))));
                return;
            }
            camera.set(Some(Ok(())));
            run_camera(classifier, v, c, alive, live).await;
        });
    });
    on_cleanup(move || {
        if let Some(v) = video.get_untracked() {
            runtime::stop_camera(&v);
        }
        if let Some(url) = photo_src.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
    });

    let pick = move |ev: leptos::ev::Event| {
        let (Some(file), Some(Ok(classifier))) = (chosen_file(&ev), runtime.get_untracked()) else {
            return;
        };
        photo.set(None);
        if let Some(old) = photo_src.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&old);
        }
        photo_src.set(web_sys::Url::create_object_url_with_blob(&file).ok());
        spawn_local(async move {
            let result = match read_bytes(&file).await {
                Ok(bytes) => classifier.classify(&bytes).await.map(|a| a.relative_body()),
                Err(e) => Err(e),
            };
            photo.set(Some(result));
        });
    };

    let expires = format::timestamp(&info.expires_at);
    view! {
        <div class="preview-head">
            <h1 data-testid="preview-title">{format!("{} v{}", info.instance_name, info.version)}</h1>
            <span class="muted small">{format!("Labels: {}", info.labels.join(", "))}</span>
        </div>
        <RuntimeFacts runtime=runtime/>
        <div class="camera" class:hidden=move || matches!(camera.get(), Some(Err(_)))>
            <video node_ref=video data-testid="preview-video" playsinline=true muted=true></video>
            <canvas node_ref=canvas class="hidden"></canvas>
            // A detector's boxes over the live picture.
            {move || view! { <BoxOverlay body=top.get() testid="preview-boxes"/> }}
            <ol class="camera-labels" data-testid="preview-top" data-frames=move || frames.get().to_string()>
                {move || {
                    top.get()
                        .into_iter()
                        .take(TOP)
                        .map(|p| {
                            view! {
                                <li data-testid="preview-label" data-label=p.label.clone()>
                                    <span>{p.label.clone()}</span>
                                    <span class="num">{format::percent(p.conf)}</span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
            <p class="fps small" data-testid="preview-fps">
                {move || format!("{:.1} frames/s · {:.0} ms per frame", fps.get(), ms.get())}
            </p>
        </div>
        {move || {
            camera
                .get()
                .and_then(Result::err)
                .map(|why| {
                    view! {
                        <div class="panel" data-testid="preview-no-camera">
                            <p>{format!("No camera here ({why}). Pick a photo instead:")}</p>
                            <input type="file" accept="image/*" data-testid="preview-file" on:change=pick/>
                        </div>
                    }
                })
        }}
        {move || match photo.get() {
            None => None,
            Some(Ok(body)) => {
                let src = photo_src.get().unwrap_or_default();
                let boxes = body.clone();
                Some(
                    view! {
                        <div class="picture-with-boxes">
                            <img class="try-picture" src=src alt="the picked photo"/>
                            <BoxOverlay body=boxes testid="preview-photo-boxes"/>
                        </div>
                        <PredictionList body=body testid="preview-photo-labels"/>
                    }
                        .into_any(),
                )
            }
            Some(Err(e)) => Some(view! { <div class="alert error" role="alert">{e}</div> }.into_any()),
        }}
        <p class="muted small">{format!("This link works until {expires}.")}</p>
    }
}

/// Classifies frames until the page goes away, one at a time (a frame is only grabbed when
/// the previous one is done, so a slow device drops frames instead of queueing them).
async fn run_camera(
    classifier: Classifier,
    video: web_sys::HtmlVideoElement,
    canvas: web_sys::HtmlCanvasElement,
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: Live,
) {
    let clock = || js_sys::Date::now();
    let mut last = clock();
    while alive.load(Ordering::Relaxed) {
        runtime::next_frame().await;
        match classifier.classify_frame(&video, &canvas).await {
            Ok(Some(a)) => {
                let now = clock();
                let rate = 1000.0 / (now - last).max(1.0);
                last = now;
                // A moving average, so the figure is readable.
                live.fps.update(|f| {
                    *f = if *f == 0.0 {
                        rate
                    } else {
                        0.8 * *f + 0.2 * rate
                    }
                });
                live.ms.set(a.ms);
                live.top.set(a.relative_body());
                live.frames.update(|n| *n += 1);
            }
            Ok(None) => {}
            Err(e) => {
                leptos::logging::warn!("preview frame: {e}");
                crate::timers::sleep(500).await;
            }
        }
    }
}
