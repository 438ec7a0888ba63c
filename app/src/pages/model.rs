//! One model version (`/models/:id`): its facts, the services serving it (and the form that
//! deploys it as one), the evaluation on the validation split (metrics, per class, a
//! confusion-matrix heatmap whose off-diagonal cells list the images the model got wrong),
//! the artifact download and Delete (refused while the version is deployed).

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::api::Instance;
use shared::train::{ClassificationMetrics, Metrics, Misclassified, ModelVersion};

use crate::api::{self, ApiResult};
use crate::pages::common::{
    Breadcrumb, ErrorNotice, confirm, load_by_id, page_by_id, with_instance,
};
use crate::pages::deploy::{DeployTarget, ServicesSection, predict_services};
use crate::pages::model_detection::DetectionEvaluation;
use crate::pages::model_ocr::OcrEvaluation;
use crate::pages::training::preset_title;
use crate::save::sentence;
use crate::{format, use_session};

/// The model version of a `/models/:id…` page, with its instance (for the breadcrumb).
pub fn load_model() -> LocalResource<ApiResult<(ModelVersion, Instance)>> {
    load_by_id("model", |id| {
        with_instance(api::get_model(id), |m| m.instance_id)
    })
}

#[component]
pub fn ModelPage() -> impl IntoView {
    let data = load_model();
    page_by_id("model-page", "model-error", data, |(model, instance)| {
        view! { <ModelView model=model instance=instance/> }
    })
}

#[component]
fn ModelView(model: ModelVersion, instance: Instance) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let id = model.id;
    let instance_id = instance.id;
    let version = model.version;
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let delete = move |_| {
        let question = format!(
            "Delete model v{version}? Its artifact is removed; the task that made it stays."
        );
        if !confirm(&question) {
            return;
        }
        busy.set(true);
        error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::delete_model(id).await {
                Ok(()) => navigate(&format!("/instances/{instance_id}"), Default::default()),
                Err(e) => {
                    session.check(&e);
                    error.set(Some(sentence(&e.message)));
                    busy.set(false);
                }
            }
        });
    };

    let labels = model.labels.clone();
    let evaluation = match model.metrics.clone() {
        Metrics::Classification(m) => view! {
            <ClassificationEvaluation metrics=m labels=labels image_size=model.image_size/>
        }
        .into_any(),
        Metrics::Detection(m) => view! {
            <DetectionEvaluation metrics=m labels=labels image_size=model.image_size/>
        }
        .into_any(),
        Metrics::Ocr(m) => view! { <OcrEvaluation metrics=m/> }.into_any(),
    };
    view! {
        <Breadcrumb instance_id=instance_id instance_name=instance.name.clone()/>
        <div class="page-head">
            <div>
                <h1 data-testid="model-title">{format!("Model v{version}")}</h1>
                <span class="badge" data-testid="model-preset">{model.preset.as_str()}</span>
            </div>
            <div class="head-actions">
                <A href=format!("/models/{id}/try") attr:class="button" attr:data-testid="model-try">
                    "Try it"
                </A>
                <A href=format!("/models/{id}/publish") attr:class="button subtle" attr:data-testid="model-publish">
                    "Publish"
                </A>
                <a
                    class="button subtle"
                    href=api::model_artifact_url(id)
                    download=format!("model-{instance_id}-v{version}.tar")
                    data-testid="model-download"
                >
                    "Download"
                </a>
                <button class="button danger" data-testid="delete-model" on:click=delete disabled=move || busy.get()>
                    "Delete"
                </button>
            </div>
        </div>
        <ErrorNotice error=error testid="model-action-error"/>
        <dl class="facts panel model-facts" data-testid="model-facts">
            <div>
                <dt>"Version"</dt>
                <dd data-testid="model-version">{version}</dd>
            </div>
            <div>
                <dt>"Preset"</dt>
                <dd>{preset_title(model.preset)}</dd>
            </div>
            <div>
                <dt>"Created"</dt>
                <dd>
                    <time datetime=model.created_at.clone()>{format::timestamp(&model.created_at)}</time>
                </dd>
            </div>
            <div>
                <dt>"Labels"</dt>
                <dd data-testid="model-labels">{model.labels.join(", ")}</dd>
            </div>
            <div>
                <dt>"Pretrained"</dt>
                <dd data-testid="model-pretrained">
                    {if model.pretrained { "yes (ImageNet backbone)" } else { "no (random initialisation)" }}
                </dd>
            </div>
            <div>
                <dt>"Made by"</dt>
                <dd>
                    <A href=format!("/tasks/{}", model.task_id) attr:data-testid="model-task-link">
                        {format!("task {}", model.task_id)}
                    </A>
                    {model
                        .base_model_id
                        .map(|b| {
                            view! {
                                <span class="muted small">
                                    " from "
                                    <A href=format!("/models/{b}")>{format!("model {b}")}</A>
                                </span>
                            }
                        })}
                </dd>
            </div>
        </dl>
        <ServicesSection
            target=DeployTarget::Model(id)
            list=predict_services(instance_id, Some(id))
            testid="model-services"
            empty="This version is not deployed."
            placeholder="e.g. shapes"
            collapsed=true
            versions=Signal::stored(BTreeMap::from([(id, version)]))
        >
            "A service answers "<code>"POST /api/predict/<name>"</code>
            " with this version's predictions, for callers holding its token."
        </ServicesSection>
        {evaluation}
    }
}

/// A classifier's evaluation: metrics, per-class figures and the confusion matrix.
#[component]
fn ClassificationEvaluation(
    metrics: ClassificationMetrics,
    labels: Vec<String>,
    image_size: u32,
) -> impl IntoView {
    let m = metrics;
    view! {
        <div class="model-tables">
            <section class="section">
                <h2>"Metrics " <small class="muted">"(validation split)"</small></h2>
                <MetricsTable metrics=m.clone() image_size=image_size/>
            </section>
            <section class="section">
                <h2>"Per class"</h2>
                <PerClassTable metrics=m.clone() labels=labels.clone()/>
            </section>
        </div>
        <section class="section">
            <h2>"Confusion matrix"</h2>
            <p class="muted small">
                "Rows are the true labels, columns the predictions; colour is the share of the row. Click a cell off the diagonal to see those images."
            </p>
            <ConfusionMatrix metrics=m labels=labels/>
        </section>
    }
}

#[component]
fn MetricsTable(metrics: ClassificationMetrics, image_size: u32) -> impl IntoView {
    let rows: Vec<(&str, &str, String)> = vec![
        ("accuracy", "Accuracy", format::percent(metrics.accuracy)),
        (
            "precision",
            "Precision (macro)",
            format::percent(metrics.precision),
        ),
        ("recall", "Recall (macro)", format::percent(metrics.recall)),
        ("f1", "F1 (macro)", format::percent(metrics.f1)),
        ("loss", "Loss", format!("{:.4}", metrics.loss)),
        (
            "model_size",
            "Model size",
            format::bytes(metrics.model_size),
        ),
        (
            "image_size",
            "Input size",
            format!("{image_size} × {image_size} px"),
        ),
        (
            "validation_images",
            "Validation images",
            metrics.validation_images.to_string(),
        ),
        (
            "train_images",
            "Training images",
            metrics.train_images.to_string(),
        ),
    ];
    kv_table(rows)
}

/// A key/value table of metrics: (key for tests, title, shown value) per row.
pub fn kv_table(rows: Vec<(&'static str, &'static str, String)>) -> impl IntoView {
    view! {
        <table class="table kv" data-testid="metrics-table">
            <tbody>
                {rows
                    .into_iter()
                    .map(|(key, title, value)| {
                        view! {
                            <tr data-testid="metric" data-key=key>
                                <th scope="row">{title}</th>
                                <td data-testid=format!("metric-{key}")>{value}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn PerClassTable(metrics: ClassificationMetrics, labels: Vec<String>) -> impl IntoView {
    // The model's label order; any other class the metrics name comes after.
    let mut order = labels;
    for l in metrics.per_class.keys() {
        if !order.contains(l) {
            order.push(l.clone());
        }
    }
    view! {
        <div class="table-scroll">
            <table class="table" data-testid="per-class-table">
                <thead>
                    <tr>
                        <th>"Label"</th>
                        <th class="num">"Precision"</th>
                        <th class="num">"Recall"</th>
                        <th class="num">"F1"</th>
                        <th class="num">"Images"</th>
                    </tr>
                </thead>
                <tbody>
                    {order
                        .into_iter()
                        .filter_map(|l| metrics.per_class.get(&l).cloned().map(|c| (l, c)))
                        .map(|(label, c)| {
                            view! {
                                <tr data-testid="class-row" data-label=label.clone()>
                                    <td>{label.clone()}</td>
                                    <td class="num">{format::percent(c.precision)}</td>
                                    <td class="num">{format::percent(c.recall)}</td>
                                    <td class="num">{format::percent(c.f1)}</td>
                                    <td class="num">{c.support}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// Background and text colour of a cell: blue for right answers, red for mistakes, as
/// strong as the cell's share of its row.
pub fn cell_colors(share: f64, diagonal: bool) -> (String, &'static str) {
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let alpha = if share > 0.0 {
        0.08 + 0.92 * share
    } else {
        0.0
    };
    let rgb = if diagonal {
        "47, 111, 223"
    } else {
        "194, 59, 50"
    };
    let text = if alpha > 0.55 { "#ffffff" } else { "inherit" };
    (format!("rgba({rgb}, {alpha:.3})"), text)
}

#[component]
fn ConfusionMatrix(metrics: ClassificationMetrics, labels: Vec<String>) -> impl IntoView {
    let n = labels.len().min(metrics.confusion_matrix.len());
    let matrix: Vec<Vec<u64>> = metrics
        .confusion_matrix
        .iter()
        .take(n)
        .map(|row| (0..n).map(|j| row.get(j).copied().unwrap_or(0)).collect())
        .collect();
    let selected = RwSignal::new(None::<(String, String)>);
    let misclassified = StoredValue::new(metrics.misclassified);
    let total: u64 = matrix.iter().flatten().sum();

    let head = labels
        .iter()
        .take(n)
        .map(|l| view! { <th scope="col" class="cm-label" title=l.clone()>{l.clone()}</th> })
        .collect_view();
    let body = matrix
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let row_sum: u64 = row.iter().sum();
            let truth = labels[i].clone();
            let cells = row
                .into_iter()
                .enumerate()
                .map(|(j, count)| {
                    let predicted = labels[j].clone();
                    let diagonal = i == j;
                    let share = if row_sum > 0 {
                        count as f64 / row_sum as f64
                    } else {
                        0.0
                    };
                    let (background, color) = cell_colors(share, diagonal);
                    let pair = (truth.clone(), predicted.clone());
                    let this = pair.clone();
                    let clickable = !diagonal && count > 0;
                    let tip = format!(
                        "{count} image{} labelled {} predicted as {} ({})",
                        if count == 1 { "" } else { "s" },
                        pair.0,
                        pair.1,
                        format::percent(share)
                    );
                    let inner = view! {
                        <span class="cm-count">{count}</span>
                        <span class="cm-share">{if row_sum > 0 { format!("{:.0}%", share * 100.0) } else { String::new() }}</span>
                    };
                    view! {
                        <td
                            class="cm-cell"
                            class:diagonal=diagonal
                            class:selected=move || selected.with(|s| s.as_ref() == Some(&this))
                            data-testid="cm-cell"
                            data-truth=truth.clone()
                            data-predicted=predicted.clone()
                            data-count=count
                            style=format!("background: {background}; color: {color};")
                            title=tip
                        >
                            {if clickable {
                                view! {
                                    <button
                                        class="cm-button"
                                        data-testid="cm-cell-button"
                                        on:click=move |_| {
                                            selected.update(|s| {
                                                *s = if s.as_ref() == Some(&pair) { None } else { Some(pair.clone()) };
                                            })
                                        }
                                    >
                                        {inner}
                                    </button>
                                }
                                    .into_any()
                            } else {
                                view! { <span class="cm-static">{inner}</span> }.into_any()
                            }}
                        </td>
                    }
                })
                .collect_view();
            view! {
                <tr>
                    <th scope="row" class="cm-label" title=truth.clone()>{truth.clone()}</th>
                    {cells}
                </tr>
            }
        })
        .collect_view();

    let drill = move || {
        selected.get().map(|(truth, predicted)| {
            let images: Vec<Misclassified> = misclassified.with_value(|all| {
                all.iter()
                    .filter(|m| m.truth == truth && m.predicted == predicted)
                    .cloned()
                    .collect()
            });
            let count = images.len();
            view! {
                <div class="panel drill" data-testid="misclassified-panel" data-truth=truth.clone() data-predicted=predicted.clone()>
                    <div class="section-head">
                        <h3>
                            {format!("Labelled {truth}, predicted {predicted}: ")}
                            {format::count(count as i64, "image", "images")}
                        </h3>
                        <button class="button subtle small" data-testid="misclassified-close" on:click=move |_| selected.set(None)>
                            "Close"
                        </button>
                    </div>
                    {if images.is_empty() {
                        view! { <p class="muted" data-testid="misclassified-empty">"The server kept no images for this cell."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="thumb-grid small" data-testid="misclassified-list">
                                {images
                                    .into_iter()
                                    .map(|m| {
                                        view! {
                                            <li class="thumb" data-testid="misclassified" data-image-id=m.image_id>
                                                <a href=api::content_url(m.image_id) target="_blank" class="thumb-link" title="Open the image">
                                                    <img
                                                        src=api::thumbnail_url(m.image_id, 256)
                                                        alt=format!("image {} labelled {}", m.image_id, m.truth)
                                                        loading="lazy"
                                                        decoding="async"
                                                        width="256"
                                                        height="256"
                                                    />
                                                </a>
                                                <div class="thumb-caption">
                                                    <span class="thumb-label">{m.predicted.clone()}</span>
                                                    <span class="muted" data-testid="misclassified-confidence">
                                                        {format!("{} confident", format::percent(m.confidence))}
                                                    </span>
                                                </div>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                            .into_any()
                    }}
                </div>
            }
        })
    };

    view! {
        <div class="cm-wrap">
            <table class="confusion" data-testid="confusion-matrix" data-size=n data-total=total>
                <thead>
                    <tr>
                        <th class="cm-corner">
                            <span>"truth ↓"</span>
                            <span>"predicted →"</span>
                        </th>
                        {head}
                    </tr>
                </thead>
                <tbody>{body}</tbody>
            </table>
        </div>
        {drill}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_the_share() {
        assert_eq!(cell_colors(0.0, true).0, "rgba(47, 111, 223, 0.000)");
        assert_eq!(
            cell_colors(1.0, true),
            ("rgba(47, 111, 223, 1.000)".to_owned(), "#ffffff")
        );
        assert_eq!(
            cell_colors(0.25, false),
            ("rgba(194, 59, 50, 0.310)".to_owned(), "inherit")
        );
        assert_eq!(cell_colors(f64::NAN, false).0, "rgba(194, 59, 50, 0.000)");
    }
}
