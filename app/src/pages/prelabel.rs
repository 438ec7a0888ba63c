//! "Suggest with version N" on the box and text labelling page: runs a model version over
//! the dataset's unlabelled images on the server (a job with progress) and hands each
//! image's drafts to the canvas, which draws them dashed to accept, edit or reject. Drafts
//! are never labels: an accepted one is saved like a box drawn by hand.

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::{DraftBox, PrelabelRun, Prelabels};

use crate::api;
use crate::help::release_focus;
use crate::use_session;

/// Each image's drafts still waiting for a decision.
pub type DraftMap = HashMap<i64, Vec<DraftBox>>;

/// The drafts of a listing, by image.
fn by_image(p: Prelabels) -> DraftMap {
    p.items
        .into_iter()
        .filter(|i| !i.boxes.is_empty())
        .map(|i| (i.image_id, i.boxes))
        .collect()
}

fn run_status(run: &PrelabelRun) -> String {
    match run.state.as_str() {
        "running" => format!("Suggesting… {} / {} images", run.done, run.total),
        "failed" => format!(
            "Suggesting failed: {}",
            run.message.as_deref().unwrap_or("no reason given")
        ),
        _ => match &run.message {
            Some(m) => format!("Suggested on {} images ({m}).", run.total),
            None => format!("Suggested on {} images.", run.total),
        },
    }
}

/// The panel: model version, start, progress, threshold. `drafts` is filled from the
/// server (at first, and when a run ends); the page takes decided drafts out of it.
#[component]
pub fn DraftPanel(
    dataset: i64,
    instance: i64,
    drafts: RwSignal<DraftMap>,
    min_conf: RwSignal<f64>,
) -> impl IntoView {
    let session = use_session();
    let models = LocalResource::new(move || session.checked(api::list_models(instance)));
    let chosen = RwSignal::new(None::<i64>);
    let run = RwSignal::new(None::<PrelabelRun>);
    let error = RwSignal::new(None::<String>);
    let alive = crate::timers::alive_flag();

    // Reads the run and the drafts; while the run goes on, again every second.
    let poll = Callback::new(move |()| {
        let alive = alive.clone();
        spawn_local(async move {
            loop {
                match session.checked(api::get_prelabels(dataset)).await {
                    Ok(p) => {
                        let running = p.run.as_ref().is_some_and(|r| r.state == "running");
                        run.set(p.run.clone());
                        if !running {
                            drafts.set(by_image(p));
                            break;
                        }
                    }
                    Err(e) => {
                        error.set(Some(e.to_string()));
                        break;
                    }
                }
                crate::timers::sleep(1000).await;
                if !alive.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
        });
    });
    poll.run(());
    let start = move |_| {
        let Some(model) = chosen.get_untracked().or_else(|| {
            models
                .get_untracked()
                .and_then(|m| m.ok())
                .and_then(|m| m.first().map(|v| v.id))
        }) else {
            error.set(Some(
                "This instance has no trained model version yet.".into(),
            ));
            return;
        };
        error.set(None);
        spawn_local(async move {
            match session.checked(api::start_prelabels(dataset, model)).await {
                Ok(r) => {
                    run.set(Some(r));
                    poll.run(());
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let running = move || run.with(|r| r.as_ref().is_some_and(|r| r.state == "running"));
    let options = move || {
        models
            .get()
            .and_then(|m| m.ok())
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                view! { <option value=m.id.to_string()>{format!("Version {}", m.version)}</option> }
            })
            .collect_view()
    };
    let has_models = move || {
        models
            .get()
            .and_then(|m| m.ok())
            .is_some_and(|m| !m.is_empty())
    };

    view! {
        <div class="draft-panel" data-testid="draft-panel">
            <h2 class="panel-title">"Suggestions"</h2>
            <Show
                when=has_models
                fallback=|| view! { <p class="muted small">"Train a version first: its boxes can then be suggested here as drafts."</p> }
            >
                <div class="inline-field">
                    <select
                        data-testid="prelabel-model"
                        aria-label="Model version to suggest with"
                        on:change=move |ev| {
                            release_focus(&ev);
                            chosen.set(event_target_value(&ev).parse().ok());
                        }
                    >
                        {options}
                    </select>
                    <button
                        class="button small"
                        data-testid="prelabel-start"
                        disabled=running
                        on:click=start
                    >
                        "Suggest"
                    </button>
                </div>
            </Show>
            <p class="small" data-testid="prelabel-status" role="status">
                {move || run.with(|r| r.as_ref().map(run_status).unwrap_or_default())}
            </p>
            <p class="error small" data-testid="prelabel-error">
                {move || error.get().unwrap_or_default()}
            </p>
            <p class="small" data-testid="draft-images">
                {move || match drafts.with(HashMap::len) {
                    0 => String::new(),
                    n => crate::format::count(n as i64, "image has drafts", "images have drafts"),
                }}
            </p>
            <label class="field small">
                <span>{move || format!("Show drafts from {:.0}% confidence", min_conf.get() * 100.0)}</span>
                <input
                    type="range"
                    min="0"
                    max="1"
                    step="0.05"
                    data-testid="draft-min"
                    prop:value=move || min_conf.get().to_string()
                    on:input=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            min_conf.set(v);
                        }
                    }
                    on:change=move |ev| release_focus(&ev)
                />
            </label>
            <p class="muted small hint">
                "Drafts are dashed. Click one or press E to accept the most confident (then edit it), Q to reject it; Enter accepts every draft shown and drops the rest, X rejects them all."
            </p>
        </div>
    }
}
