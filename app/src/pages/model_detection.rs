//! A detection model's evaluation on the model page: the metrics, AP per class, the
//! precision-recall curves, and the validation images with their true boxes (dashed) and
//! the predicted ones, redrawn as the confidence slider moves; a filter keeps the images
//! with misses or false positives at that threshold.

use leptos::prelude::*;
use shared::detect::Rect;
use shared::train::{DetectionMetrics, EvalBox, EvalImage};

use crate::pages::model::kv_table;
use crate::{api, format};

/// Colours of the classes, in label order (boxes, curves).
const COLOURS: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563",
];

fn colour(labels: &[String], label: &str) -> &'static str {
    let i = labels.iter().position(|l| l == label).unwrap_or(0);
    COLOURS[i % COLOURS.len()]
}

fn rect(b: &EvalBox) -> Rect {
    Rect::new(b.xmin as f32, b.ymin as f32, b.xmax as f32, b.ymax as f32)
}

/// At `threshold`: (true boxes nobody found, predicted boxes matching no true box), IoU 0.5
/// and the same label, each true box matched once, highest confidence first.
pub fn mistakes(image: &EvalImage, threshold: f64) -> (usize, usize) {
    let mut used = vec![false; image.truth.len()];
    let mut false_pos = 0;
    for p in image.predicted.iter().filter(|p| p.conf >= threshold) {
        let hit = image
            .truth
            .iter()
            .enumerate()
            .find(|(j, t)| !used[*j] && t.label == p.label && rect(t).iou(&rect(p)) >= 0.5);
        match hit {
            Some((j, _)) => used[j] = true,
            None => false_pos += 1,
        }
    }
    (used.iter().filter(|u| !**u).count(), false_pos)
}

#[component]
pub fn DetectionEvaluation(
    metrics: DetectionMetrics,
    labels: Vec<String>,
    image_size: u32,
) -> impl IntoView {
    let m = metrics;
    let rows = vec![
        ("map", "mAP@0.5", format::percent(m.map)),
        ("map_50_95", "mAP@0.5:0.95", format::percent(m.map_50_95)),
        (
            "precision",
            "Precision (at the served threshold)",
            format::percent(m.precision),
        ),
        (
            "recall",
            "Recall (at the served threshold)",
            format::percent(m.recall),
        ),
        (
            "conf_threshold",
            "Served confidence threshold",
            format!("{:.2}", m.conf_threshold),
        ),
        ("loss", "Loss", format!("{:.4}", m.loss)),
        (
            "classification_loss",
            "Classification loss",
            format!("{:.4}", m.classification_loss),
        ),
        (
            "localization_loss",
            "Localization loss",
            format!("{:.4}", m.localization_loss),
        ),
        ("model_size", "Model size", format::bytes(m.model_size)),
        (
            "image_size",
            "Input size",
            format!("{image_size} × {image_size} px"),
        ),
        (
            "validation_images",
            "Validation images",
            m.validation_images.to_string(),
        ),
        (
            "train_images",
            "Training images",
            m.train_images.to_string(),
        ),
    ];
    let per_class: Vec<_> = labels
        .iter()
        .filter_map(|l| m.per_class.get(l).cloned().map(|c| (l.clone(), c)))
        .collect();
    let curves = per_class.clone();
    let threshold = RwSignal::new(m.conf_threshold);
    let only_mistakes = RwSignal::new(false);
    let images = StoredValue::new(m.images);
    let labels = StoredValue::new(labels);
    let shown = move || {
        let t = threshold.get();
        images.with_value(|all| {
            all.iter()
                .filter(|im| {
                    if !only_mistakes.get() {
                        return true;
                    }
                    let (missed, false_pos) = mistakes(im, t);
                    missed + false_pos > 0
                })
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <div class="model-tables">
            <section class="section">
                <h2>"Metrics " <small class="muted">"(validation split)"</small></h2>
                {kv_table(rows)}
                <p class="muted small">
                    "AP is the area under the precision envelope over all detections (all-point interpolation, IoU ≥ 0.5); mAP@0.5:0.95 averages it over IoU 0.50, 0.55, …, 0.95."
                </p>
            </section>
            <section class="section">
                <h2>"Per class"</h2>
                <div class="table-scroll">
                    <table class="table" data-testid="per-class-ap-table">
                        <thead>
                            <tr>
                                <th>"Label"</th>
                                <th class="num">"AP@0.5"</th>
                                <th class="num">"AP@0.5:0.95"</th>
                                <th class="num">"Precision"</th>
                                <th class="num">"Recall"</th>
                                <th class="num">"Boxes"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {per_class
                                .into_iter()
                                .map(|(l, c)| {
                                    view! {
                                        <tr data-testid="class-ap" data-label=l.clone()>
                                            <td>{l.clone()}</td>
                                            <td class="num">{format::percent(c.ap)}</td>
                                            <td class="num">{format::percent(c.ap_50_95)}</td>
                                            <td class="num">{format::percent(c.precision)}</td>
                                            <td class="num">{format::percent(c.recall)}</td>
                                            <td class="num">{c.support}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                </div>
            </section>
        </div>
        <section class="section">
            <h2>"Precision-recall curves " <small class="muted">"(IoU 0.5)"</small></h2>
            <svg class="pr-chart" viewBox="0 0 320 220" role="img" aria-label="Precision-recall curves" data-testid="pr-curves">
                <rect x="40" y="10" width="260" height="170" fill="none" stroke="#cbd5e1"/>
                <text x="170" y="212" text-anchor="middle" font-size="11">"recall"</text>
                <text x="12" y="95" text-anchor="middle" font-size="11" transform="rotate(-90 12 95)">"precision"</text>
                {[0.0, 0.5, 1.0]
                    .into_iter()
                    .map(|v| {
                        view! {
                            <text x=40.0 + 260.0 * v y="194" text-anchor="middle" font-size="10">{format!("{v:.1}")}</text>
                            <text x="34" y=180.0 - 170.0 * v + 3.0 text-anchor="end" font-size="10">{format!("{v:.1}")}</text>
                        }
                    })
                    .collect_view()}
                {curves
                    .into_iter()
                    .map(|(l, c)| {
                        let points: String = c
                            .pr_curve
                            .iter()
                            .map(|p| format!("{:.1},{:.1} ", 40.0 + 260.0 * p[2], 180.0 - 170.0 * p[1]))
                            .collect();
                        let stroke = labels.with_value(|ls| colour(ls, &l));
                        view! {
                            <polyline points=points fill="none" stroke=stroke stroke-width="2">
                                <title>{format!("{l}: AP {}", format::percent(c.ap))}</title>
                            </polyline>
                        }
                    })
                    .collect_view()}
            </svg>
            <p class="legend small">
                {labels
                    .get_value()
                    .into_iter()
                    .map(|l| {
                        let c = labels.with_value(|ls| colour(ls, &l));
                        view! { <span style=format!("color:{c}")>"■ " {l} " "</span> }
                    })
                    .collect_view()}
            </p>
        </section>
        <section class="section">
            <h2>"Validation images"</h2>
            <div class="toolbar">
                <label>
                    "Confidence ≥ "
                    <input
                        type="range"
                        min="0.05"
                        max="0.95"
                        step="0.05"
                        data-testid="conf-slider"
                        prop:value=move || threshold.get().to_string()
                        on:input=move |ev| {
                            if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                                threshold.set(v);
                            }
                        }
                    />
                    <span data-testid="conf-value">{move || format!("{:.2}", threshold.get())}</span>
                </label>
                <label>
                    <input
                        type="checkbox"
                        data-testid="only-mistakes"
                        on:change=move |ev| only_mistakes.set(event_target_checked(&ev))
                    />
                    " only images with misses or false positives"
                </label>
            </div>
            <p class="muted small">"Dashed: true boxes. Solid: predicted boxes with their confidence."</p>
            <div class="eval-grid" data-testid="eval-images">
                <For each=shown key=|im| im.image_id let:im>
                    <EvalImageView image=im threshold=threshold labels=labels/>
                </For>
            </div>
        </section>
    }
}

#[component]
fn EvalImageView(
    image: EvalImage,
    threshold: RwSignal<f64>,
    labels: StoredValue<Vec<String>>,
) -> impl IntoView {
    let truth = image.truth.clone();
    let predicted = image.predicted.clone();
    let image = StoredValue::new(image);
    let boxes = move || {
        let t = threshold.get();
        predicted
            .iter()
            .filter(|p| p.conf >= t)
            .map(|p| {
                let c = labels.with_value(|ls| colour(ls, &p.label));
                view! {
                    <g data-testid="pred-box">
                        <rect
                            x=p.xmin * 100.0
                            y=p.ymin * 100.0
                            width=(p.xmax - p.xmin) * 100.0
                            height=(p.ymax - p.ymin) * 100.0
                            fill="none"
                            stroke=c
                            stroke-width="0.6"
                        />
                        <text x=p.xmin * 100.0 + 0.5 y=p.ymin * 100.0 + 3.0 font-size="3" fill=c>
                            {format!("{} {:.2}", p.label, p.conf)}
                        </text>
                    </g>
                }
            })
            .collect_view()
    };
    let counts = move || {
        let (missed, false_pos) = image.with_value(|im| mistakes(im, threshold.get()));
        format!("{missed} missed · {false_pos} false")
    };
    let id = image.with_value(|im| im.image_id);
    view! {
        <figure class="eval-image" data-testid="eval-image" data-image-id=id>
            <svg viewBox="0 0 100 100" preserveAspectRatio="none">
                <image href=api::content_url(id) x="0" y="0" width="100" height="100" preserveAspectRatio="none"/>
                {truth
                    .iter()
                    .map(|b| {
                        let c = labels.with_value(|ls| colour(ls, &b.label));
                        view! {
                            <rect
                                data-testid="true-box"
                                x=b.xmin * 100.0
                                y=b.ymin * 100.0
                                width=(b.xmax - b.xmin) * 100.0
                                height=(b.ymax - b.ymin) * 100.0
                                fill="none"
                                stroke=c
                                stroke-width="0.5"
                                stroke-dasharray="1.5 1"
                            />
                        }
                    })
                    .collect_view()}
                {boxes}
            </svg>
            <figcaption class="small muted">{format!("image {id} · ")} {counts}</figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(label: &str, conf: f64, x: f64) -> EvalBox {
        EvalBox {
            label: label.into(),
            conf,
            xmin: x,
            ymin: 0.0,
            xmax: x + 0.2,
            ymax: 0.2,
        }
    }

    #[test]
    fn mistakes_follow_the_threshold() {
        let im = EvalImage {
            image_id: 1,
            truth: vec![b("a", 1.0, 0.0), b("a", 1.0, 0.5)],
            predicted: vec![b("a", 0.9, 0.0), b("b", 0.6, 0.5), b("a", 0.4, 0.5)],
        };
        // At 0.5: the second truth is missed, the "b" box is false.
        assert_eq!(mistakes(&im, 0.5), (1, 1));
        // At 0.3 the low "a" box finds it.
        assert_eq!(mistakes(&im, 0.3), (0, 1));
        assert_eq!(mistakes(&im, 0.95), (2, 0));
    }
}
