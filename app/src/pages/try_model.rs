//! Try a model in this browser (`/models/:id/try`, SPEC §6): the model runs here, on WebGPU
//! when the browser has it and on the CPU otherwise, with no quota and no server round trip.
//! Drop or pick an image (PNG, JPG) and see the labels as a list and as the JSON `body` the
//! predict API would answer. `?backend=cpu|webgpu` forces a backend.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use shared::api::Instance;
use shared::predict::Prediction;
use shared::train::ModelVersion;

use crate::api;
use crate::format;
use crate::pages::common::{Breadcrumb, chosen_file, page_by_id, read_bytes};
use crate::pages::model::load_model;
use crate::runtime::{Answer, Classifier};

/// Largest image the try page reads (SPEC: 1.5 MB in the original; we allow more).
pub const MAX_TRY_BYTES: f64 = 20.0 * 1024.0 * 1024.0;

#[component]
pub fn TryPage() -> impl IntoView {
    let data = load_model();
    page_by_id("try-page", "try-error", data, |(model, instance)| {
        view! { <TryView model=model instance=instance/> }
    })
}

/// The backend asked for in the query (`auto` unless `cpu` or `webgpu`).
pub fn wanted_backend() -> String {
    let q = use_query_map().get_untracked();
    match q.get_str("backend") {
        Some(b @ ("cpu" | "webgpu")) => b.to_owned(),
        _ => "auto".to_owned(),
    }
}

/// Loads `url` into this browser's runtime once, on `backend`.
pub fn load_runtime(url: String, backend: String) -> LocalResource<Result<Classifier, String>> {
    LocalResource::new(move || {
        let (url, backend) = (url.clone(), backend.clone());
        async move { Classifier::load(&url, &backend).await }
    })
}

#[component]
fn TryView(model: ModelVersion, instance: Instance) -> impl IntoView {
    let id = model.id;
    let runtime = load_runtime(api::model_web_artifact_url(id), wanted_backend());
    let answer = RwSignal::new(None::<Result<Answer, String>>);
    let picture = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    let runs = RwSignal::new(0u32);
    let dragging = RwSignal::new(false);

    let classify = move |file: web_sys::File| {
        let Some(Ok(classifier)) = runtime.get_untracked() else {
            return;
        };
        if file.size() > MAX_TRY_BYTES {
            answer.set(Some(Err(format!(
                "{} is {}; pick an image under {}.",
                file.name(),
                format::bytes(file.size() as u64),
                format::bytes(MAX_TRY_BYTES as u64)
            ))));
            return;
        }
        if let Some(old) = picture.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&old);
        }
        picture.set(web_sys::Url::create_object_url_with_blob(&file).ok());
        name.set(file.name());
        answer.set(None);
        spawn_local(async move {
            let result = match read_bytes(&file).await {
                Ok(bytes) => classifier
                    .classify(&bytes)
                    .await
                    .map_err(|e| format!("{}: {e}. Pick a PNG or JPG image.", file.name())),
                Err(e) => Err(e),
            };
            answer.set(Some(result));
            runs.update(|n| *n += 1);
        });
    };
    on_cleanup(move || {
        if let Some(url) = picture.get_untracked() {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
    });
    let on_drop = move |ev: leptos::ev::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        if let Some(file) = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0))
        {
            classify(file);
        }
    };

    view! {
        <Breadcrumb instance_id=instance.id instance_name=instance.name.clone()/>
        <div class="page-head">
            <div>
                <h1 data-testid="try-title">{format!("Try model v{}", model.version)}</h1>
                <span class="muted">"Runs in this browser: no upload, no quota."</span>
            </div>
            <div class="head-actions">
                <A href=format!("/models/{id}/publish") attr:class="button subtle" attr:data-testid="try-publish">
                    "Preview on a phone"
                </A>
            </div>
        </div>
        <RuntimeFacts runtime=runtime/>
        <Show when=move || matches!(runtime.get(), Some(Ok(_)))>
            <label
                class="dropzone"
                class:dragging=move || dragging.get()
                data-testid="try-dropzone"
                on:dragover=move |ev| {
                    ev.prevent_default();
                    dragging.set(true);
                }
                on:dragleave=move |_| dragging.set(false)
                on:drop=on_drop
            >
                <input
                    type="file"
                    accept="image/png,image/jpeg"
                    data-testid="try-file"
                    on:change=move |ev| {
                        if let Some(f) = chosen_file(&ev) {
                            classify(f);
                        }
                    }
                />
                <span>"Drop an image here, or click to pick one (PNG, JPG)."</span>
            </label>
        </Show>
        <div class="try-result">
            {move || {
                picture
                    .get()
                    .map(|src| {
                        let boxes = move || match answer.get() {
                            Some(Ok(a)) => a.relative_body(),
                            _ => Vec::new(),
                        };
                        view! {
                            <div class="picture-with-boxes">
                                <img class="try-picture" src=src alt=move || name.get() data-testid="try-picture"/>
                                {move || view! { <BoxOverlay body=boxes() testid="try-boxes"/> }}
                            </div>
                        }
                    })
            }}
            <div data-testid="try-answer" data-runs=move || runs.get().to_string()>
                {move || match answer.get() {
                    None => None,
                    Some(Err(e)) => {
                        Some(view! { <div class="alert error" role="alert" data-testid="try-answer-error">{e}</div> }.into_any())
                    }
                    Some(Ok(a)) => {
                        Some(
                            view! {
                                <p class="muted small" data-testid="try-time">
                                    {format!("{:.1} ms on {}", a.ms, runtime_backend(runtime))}
                                </p>
                                <PredictionList body=a.body.clone() testid="try-labels"/>
                                <h3>"JSON"</h3>
                                <pre class="json" data-testid="try-json">{pretty_body(&a.json)}</pre>
                            }
                                .into_any(),
                        )
                    }
                }}
            </div>
        </div>
    }
}

fn runtime_backend(runtime: LocalResource<Result<Classifier, String>>) -> String {
    match runtime.get_untracked() {
        Some(Ok(c)) => c.backend,
        _ => String::new(),
    }
}

/// The `body` of an answer, indented (the shape of the predict API's `output[].body`).
fn pretty_body(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v["body"]).ok())
        .unwrap_or_else(|| json.to_owned())
}

/// Loading progress, then the backend, load time and download size of the runtime.
#[component]
pub fn RuntimeFacts(runtime: LocalResource<Result<Classifier, String>>) -> impl IntoView {
    view! {
        <div class="runtime-facts" data-testid="runtime">
            {move || match runtime.get() {
                None => {
                    view! { <p class="muted" data-testid="runtime-loading">"Loading the model into this browser…"</p> }
                        .into_any()
                }
                Some(Err(e)) => {
                    view! {
                        <div class="alert error" role="alert" data-testid="runtime-error">
                            {format!("The model could not be loaded here: {e}")}
                        </div>
                    }
                        .into_any()
                }
                Some(Ok(c)) => {
                    let backend = if c.backend == "webgpu" { "WebGPU" } else { "CPU (wasm)" };
                    let download = if c.cached {
                        format!("{} from this browser's cache", format::bytes(c.bytes))
                    } else if c.transferred > 0 {
                        format!(
                            "{} downloaded ({} unpacked)",
                            format::bytes(c.transferred),
                            format::bytes(c.bytes)
                        )
                    } else {
                        format!("{} downloaded", format::bytes(c.bytes))
                    };
                    view! {
                        <dl class="facts panel" data-testid="runtime-ready" data-backend=c.backend.clone()>
                            <div>
                                <dt>"Runs on"</dt>
                                <dd data-testid="runtime-backend">{backend}</dd>
                            </div>
                            <div>
                                <dt>"Ready in"</dt>
                                <dd data-testid="runtime-load-ms">{format!("{:.0} ms", c.load_ms)}</dd>
                            </div>
                            <div>
                                <dt>"Model"</dt>
                                <dd data-testid="runtime-size">{download}</dd>
                            </div>
                        </dl>
                    }
                        .into_any()
                }
            }}
        </div>
    }
}

/// Labels with their confidence as bars, highest first.
#[component]
pub fn PredictionList(body: Vec<Prediction>, testid: &'static str) -> impl IntoView {
    view! {
        <ol class="predictions" data-testid=testid>
            {body
                .into_iter()
                .map(|p| {
                    let width = format!("width: {:.1}%", p.conf * 100.0);
                    view! {
                        <li data-testid="prediction" data-label=p.label.clone() data-conf=p.conf.to_string()>
                            <span class="prediction-label">{p.label.clone()}</span>
                            <span class="prediction-bar"><span style=width></span></span>
                            <span class="prediction-conf num">{format::percent(p.conf)}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
}

/// A detector's boxes or OCR's lines (`pos`: relative corners, see
/// [`crate::runtime::Answer::relative_body`]) drawn over the picture they were found in,
/// with label (or text) and confidence; nothing for a classifier's answer.
#[component]
pub fn BoxOverlay(body: Vec<Prediction>, testid: &'static str) -> impl IntoView {
    let boxes: Vec<_> = body
        .into_iter()
        .filter_map(|p| p.pos.map(|pos| (p.label, p.conf, pos.points())))
        .collect();
    (!boxes.is_empty()).then(|| {
        view! {
            <svg class="box-overlay" viewBox="0 0 100 100" preserveAspectRatio="none" data-testid=testid>
                {boxes
                    .into_iter()
                    .map(|(label, conf, pos)| {
                        let [x0, y0] = pos[0];
                        let points = pos
                            .iter()
                            .map(|[x, y]| format!("{:.3},{:.3}", x * 100.0, y * 100.0))
                            .collect::<Vec<_>>()
                            .join(" ");
                        view! {
                            <g data-testid="drawn-box" data-label=label.clone()>
                                <polygon
                                    points=points
                                    fill="none"
                                    stroke="#22c55e"
                                    stroke-width="0.6"
                                />
                                <text x=x0 * 100.0 + 0.6 y=y0 * 100.0 + 3.2 font-size="3.2" fill="#22c55e">
                                    {format!("{label} {:.0}%", conf * 100.0)}
                                </text>
                            </g>
                        }
                    })
                    .collect_view()}
            </svg>
        }
    })
}
