//! The evaluation of an OCR model version: the end-to-end figures on the validation images
//! beside the starting (pretrained) models' own, and every validation photo with its true
//! lines (dashed) and the lines read (green when the text is right, red when wrong), with
//! the texts listed under it; "Only mistakes" filters to the photos with a wrong line.

use leptos::prelude::*;
use shared::ocr::same_text;
use shared::train::{OcrEvalImage, OcrMetrics};

use crate::api;
use crate::format;
use crate::pages::model::kv_table;

/// Whether every true line of the image was read exactly (by a line over it).
fn all_read(im: &OcrEvalImage) -> bool {
    im.truth.iter().all(|t| {
        im.read
            .iter()
            .any(|r| shared::ocr::quad_iou(&t.pos, &r.pos) >= 0.5 && same_text(&r.text, &t.text))
    })
}

#[component]
pub fn OcrEvaluation(metrics: OcrMetrics) -> impl IntoView {
    let m = metrics;
    let pair = |now: f64, before: f64| {
        format!(
            "{} (starting models {})",
            format::percent(now),
            format::percent(before)
        )
    };
    let compared = [
        (
            "exact_match",
            "Lines read exactly",
            m.scores.exact_match,
            m.pretrained.exact_match,
        ),
        (
            "cer",
            "Character error rate",
            m.scores.cer,
            m.pretrained.cer,
        ),
        (
            "precision",
            "Detection precision",
            m.scores.precision,
            m.pretrained.precision,
        ),
        (
            "recall",
            "Detection recall",
            m.scores.recall,
            m.pretrained.recall,
        ),
        (
            "hmean",
            "Detection H-mean",
            m.scores.hmean,
            m.pretrained.hmean,
        ),
    ];
    let mut rows: Vec<(&str, &str, String)> = compared
        .into_iter()
        .map(|(key, title, now, before)| (key, title, pair(now, before)))
        .collect();
    rows.extend([
        ("loss", "CTC loss", format!("{:.4}", m.loss)),
        ("model_size", "Model size", format::bytes(m.model_size)),
        (
            "validation_images",
            "Validation images",
            format!("{} ({} lines)", m.validation_images, m.validation_lines),
        ),
        (
            "train_images",
            "Training images",
            m.train_images.to_string(),
        ),
    ]);
    let only_mistakes = RwSignal::new(false);
    let images = StoredValue::new(m.images);
    let shown = move || {
        let only = only_mistakes.get();
        images.with_value(|all| {
            all.iter()
                .filter(|im| !only || !all_read(im))
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <section class="card">
            <h2>"Evaluation on the validation split"</h2>
            <p class="small muted">
                "Texts are compared with case folded and spaces and punctuation dropped; a true line counts when a line read over it (IoU ≥ 0.5) has its text."
            </p>
            {kv_table(rows)}
        </section>
        <section class="card">
            <h2>"Validation images"</h2>
            <label class="small">
                <input
                    type="checkbox"
                    data-testid="only-mistakes"
                    on:change=move |ev| only_mistakes.set(event_target_checked(&ev))
                />
                " Only mistakes"
            </label>
            <div class="eval-grid">
                {move || {
                    shown()
                        .into_iter()
                        .map(|im| view! { <OcrImage image=im/> })
                        .collect_view()
                }}
            </div>
        </section>
    }
}

fn points(pos: &[[f32; 2]; 4]) -> String {
    pos.iter()
        .map(|[x, y]| format!("{x},{y}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[component]
fn OcrImage(image: OcrEvalImage) -> impl IntoView {
    let (w, h) = (image.width.max(1), image.height.max(1));
    let stroke = (w.max(h) as f32 / 300.0).max(1.0);
    let right = |text: &str| image.truth.iter().any(|t| same_text(text, &t.text));
    let truth = image
        .truth
        .iter()
        .map(|t| {
            view! {
                <polygon data-testid="true-line" points=points(&t.pos) fill="none" stroke="#facc15"
                    stroke-width=stroke stroke-dasharray=format!("{} {}", 3.0 * stroke, 2.0 * stroke)/>
            }
        })
        .collect_view();
    let read = image
        .read
        .iter()
        .map(|r| {
            let c = if right(&r.text) { "#22c55e" } else { "#ef4444" };
            let [x, y] = r.pos[0];
            view! {
                <g data-testid="read-line">
                    <polygon points=points(&r.pos) fill="none" stroke=c stroke-width=stroke/>
                    <text x=x y=(y - 2.0 * stroke).max(10.0 * stroke) font-size=10.0 * stroke fill=c>{r.text.clone()}</text>
                </g>
            }
        })
        .collect_view();
    let texts = image
        .truth
        .iter()
        .map(|t| {
            let got = image
                .read
                .iter()
                .filter(|r| shared::ocr::quad_iou(&t.pos, &r.pos) >= 0.5)
                .map(|r| r.text.clone())
                .next()
                .unwrap_or_default();
            let ok = same_text(&got, &t.text);
            view! {
                <li class=if ok { "ok" } else { "bad" } data-testid="ocr-result" data-right=ok.to_string()>
                    {format!("{} → {}", t.text, if got.is_empty() { "(nothing)".to_owned() } else { got })}
                </li>
            }
        })
        .collect_view();
    let id = image.image_id;
    view! {
        <figure class="eval-image" data-testid="eval-image" data-image-id=id>
            <svg viewBox=format!("0 0 {w} {h}") style=format!("aspect-ratio: {w} / {h}")>
                <image href=api::content_url(id) x="0" y="0" width=w height=h/>
                {truth}
                {read}
            </svg>
            <figcaption class="small">
                <ul class="ocr-texts">{texts}</ul>
            </figcaption>
        </figure>
    }
}
