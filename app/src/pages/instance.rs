//! One instance: its facts, its datasets (with the form that indexes a new one) and, for
//! image classification, its training tasks and model versions
//! ([`crate::pages::training`]). A recommendation_recall instance shows its recall
//! workspace ([`crate::pages::recall`]) instead.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use shared::InstanceType;
use shared::api::{CreateDataset, Dataset, Instance};
use shared::names::DatasetName;

use crate::api::{self, ApiError};
use crate::pages::recall::RecallWorkspace;
use crate::pages::training::TrainingSection;
use crate::save::sentence;
use crate::{format, use_session};

#[component]
pub fn InstancePage() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| s.parse::<i64>().ok())));
    let instance = LocalResource::new(move || {
        let id = id.get();
        async move {
            let Some(id) = id else {
                return Err(ApiError::new(
                    404,
                    "not_found",
                    "There is no such instance.",
                ));
            };
            let result = api::get_instance(id).await;
            if let Err(e) = &result {
                session.check(e);
            }
            result
        }
    });

    view! {
        <section class="page" data-testid="instance-page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/">"Instances"</A>
                <span aria-hidden="true">" / "</span>
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    instance
                        .get()
                        .map(|result| match result {
                            Ok(i) => view! { <InstanceDetails instance=i/> }.into_any(),
                            Err(e) => {
                                view! {
                                    <div class="alert error" role="alert" data-testid="instance-error">
                                        {e.message}
                                    </div>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn InstanceDetails(instance: Instance) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let deleting = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let id = instance.id;
    let name = instance.name.clone();

    let delete = move |_| {
        let confirmed = window()
            .confirm_with_message(&format!(
                "Delete instance \u{201c}{name}\u{201d} and everything in it?"
            ))
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        deleting.set(true);
        error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::delete_instance(id).await {
                Ok(()) => navigate("/", Default::default()),
                Err(e) => {
                    session.check(&e);
                    deleting.set(false);
                    error.set(Some(e.message));
                }
            }
        });
    };

    view! {
        <div class="page-head">
            <div>
                <h1 data-testid="instance-name">{instance.name.clone()}</h1>
                <span class="badge" data-testid="instance-type" data-type=instance.kind.as_str()>
                    {instance.kind.title()}
                </span>
            </div>
            <button
                class="button danger"
                data-testid="delete-instance"
                on:click=delete
                disabled=move || deleting.get()
            >
                "Delete"
            </button>
        </div>
        <Show when=move || error.get().is_some()>
            <p class="alert error" role="alert" data-testid="delete-error">
                {move || error.get().unwrap_or_default()}
            </p>
        </Show>
        {(!instance.description.is_empty())
            .then(|| view! { <p class="description" data-testid="instance-description">{instance.description.clone()}</p> })}
        <dl class="facts panel">
            <div>
                <dt>"Datasets"</dt>
                <dd data-testid="instance-datasets">{instance.dataset_count}</dd>
            </div>
            <div>
                <dt>"Images"</dt>
                <dd data-testid="instance-images">{instance.image_count}</dd>
            </div>
            <div>
                <dt>"Created"</dt>
                <dd>
                    <time datetime=instance.created_at.clone()>
                        {format::timestamp(&instance.created_at)}
                    </time>
                </dd>
            </div>
        </dl>
        {if instance.kind == InstanceType::RecommendationRecall {
            view! { <RecallWorkspace instance=id/> }.into_any()
        } else {
            view! {
                <DatasetsSection instance=id kind=instance.kind/>
                {if instance.kind == InstanceType::ImageClassification {
                    view! { <TrainingSection instance=id/> }.into_any()
                } else {
                    view! {
                        <section class="section" data-testid="tasks-section">
                            <h2>"Training tasks"</h2>
                            <p class="muted" data-testid="tasks-empty">
                                "Training is available for image classification instances so far."
                            </p>
                        </section>
                    }
                        .into_any()
                }}
            }
                .into_any()
        }}
    }
}

/// The datasets of an image instance, and the form that indexes a new one.
#[component]
fn DatasetsSection(instance: i64, kind: InstanceType) -> impl IntoView {
    let session = use_session();
    let datasets = LocalResource::new(move || async move {
        let result = api::list_datasets(instance).await;
        if let Err(e) = &result {
            session.check(e);
        }
        result
    });
    let show_form = RwSignal::new(false);

    view! {
        <section class="section" data-testid="datasets-section">
            <div class="section-head">
                <h2>"Datasets"</h2>
                <Show when=move || !show_form.get()>
                    <button
                        class="button primary"
                        data-testid="new-dataset"
                        on:click=move |_| show_form.set(true)
                    >
                        "New dataset"
                    </button>
                </Show>
            </div>
            <Show when=move || show_form.get()>
                <CreateDatasetForm instance=instance kind=kind on_cancel=Callback::new(move |()| show_form.set(false))/>
            </Show>
            <Transition fallback=|| view! { <p class="muted">"Loading datasets…"</p> }>
                {move || {
                    datasets
                        .get()
                        .map(|result| match result {
                            Ok(list) if list.is_empty() => {
                                view! {
                                    <div class="empty" data-testid="datasets-empty">
                                        <p>"No datasets yet."</p>
                                        <p class="muted">{layout_hint(kind)}</p>
                                    </div>
                                }
                                    .into_any()
                            }
                            Ok(list) => {
                                view! {
                                    <ul class="dataset-list" data-testid="dataset-list">
                                        {list.into_iter().map(|d| view! { <DatasetRow dataset=d/> }).collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }
                            Err(e) => {
                                view! {
                                    <div class="alert error" role="alert" data-testid="datasets-error">
                                        {e.message}
                                    </div>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
    }
}

/// How the files of a dataset are laid out (SPEC §3).
pub fn layout_hint(kind: InstanceType) -> &'static str {
    match kind {
        InstanceType::ImageClassification => {
            "Index a directory or s3:// prefix laid out as <label>/<image>; images directly in it are unlabelled. JPG, JPEG and PNG."
        }
        InstanceType::ObjectDetection => {
            "Index a directory or s3:// prefix of images, each with an optional Pascal VOC file beside it (a.jpg, a.xml)."
        }
        InstanceType::Ocr => {
            "Index a directory or s3:// prefix of images, each with an optional Pascal VOC file beside it whose <name> holds the text."
        }
        InstanceType::RecommendationRecall => "",
    }
}

#[component]
fn DatasetRow(dataset: Dataset) -> impl IntoView {
    let href = format!("/datasets/{}", dataset.id);
    let name = dataset.name.clone();
    view! {
        <li class="dataset-row" data-testid="dataset-row" data-dataset-id=dataset.id data-name=name>
            <div class="row-main">
                <A href=href attr:class="row-name" attr:data-testid="dataset-link">
                    {dataset.name.clone()}
                </A>
                <span class="muted path" title="Indexed from">{dataset.path.clone()}</span>
            </div>
            <div class="row-facts muted">
                <span data-testid="dataset-total">{format::count(dataset.total, "image", "images")}</span>
                <span>{format!("{} labelled", dataset.labelled)}</span>
                <span>{format!("{} unlabelled", dataset.unlabelled)}</span>
                {(!dataset.skipped.is_empty())
                    .then(|| view! { <span>{format::count(dataset.skipped.len() as i64, "file skipped", "files skipped")}</span> })}
            </div>
        </li>
    }
}

/// Indexes a new dataset. The name rule is checked as it is typed (`shared::names`); the
/// server's refusals are shown by the field they concern.
#[component]
fn CreateDatasetForm(instance: i64, kind: InstanceType, on_cancel: Callback<()>) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let path = RwSignal::new(String::new());
    let touched = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let server_error = RwSignal::new(None::<ApiError>);

    let name_rule = Memo::new(move |_| {
        name.with(|n| DatasetName::parse(n.as_str()).err().map(|e| e.to_string()))
    });
    let shown_name_error = move || {
        server_error
            .with(|e| {
                e.as_ref()
                    .filter(|e| e.is_for_field("name"))
                    .map(|e| e.message.clone())
            })
            .or_else(|| if touched.get() { name_rule.get() } else { None })
    };
    let shown_path_error = move || {
        server_error.with(|e| {
            e.as_ref()
                .filter(|e| e.is_for_field("path"))
                .map(|e| e.message.clone())
        })
    };
    let other_error = move || {
        server_error.with(|e| {
            e.as_ref()
                .filter(|e| !e.is_for_field("name") && !e.is_for_field("path"))
                .map(|e| sentence(&e.message))
        })
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if pending.get_untracked() || name_rule.get_untracked().is_some() {
            return;
        }
        if path.get_untracked().trim().is_empty() {
            server_error.set(Some(ApiError {
                status: 0,
                code: "invalid_path".into(),
                message: "Enter a directory under the server's data roots, or s3://bucket/prefix/."
                    .into(),
                field: Some("path".into()),
            }));
            return;
        }
        let body = CreateDataset {
            name: name.get_untracked(),
            description: description.get_untracked().trim().to_owned(),
            path: path.get_untracked().trim().to_owned(),
        };
        pending.set(true);
        server_error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            let result = api::create_dataset(instance, body).await;
            pending.set(false);
            match result {
                Ok(d) => navigate(&format!("/datasets/{}?created=1", d.id), Default::default()),
                Err(e) => {
                    session.check(&e);
                    server_error.set(Some(e));
                }
            }
        });
    };

    view! {
        <form class="panel create-form" on:submit=submit novalidate=true data-testid="dataset-form">
            <h2>"New dataset"</h2>
            <p class="muted small">{layout_hint(kind)}</p>
            <label class="field">
                <span>"Name"</span>
                <input
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    data-testid="dataset-name"
                    aria-invalid=move || if shown_name_error().is_some() { "true" } else { "false" }
                    prop:value=move || name.get()
                    on:input=move |ev| {
                        name.set(event_target_value(&ev));
                        touched.set(true);
                        server_error.set(None);
                    }
                />
                <span class="field-message error" data-testid="dataset-name-error" aria-live="polite">
                    {move || shown_name_error().unwrap_or_default()}
                </span>
            </label>
            <label class="field">
                <span>"Path"</span>
                <input
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="/data/pets or s3://bucket/pets/"
                    data-testid="dataset-path"
                    aria-invalid=move || if shown_path_error().is_some() { "true" } else { "false" }
                    prop:value=move || path.get()
                    on:input=move |ev| {
                        path.set(event_target_value(&ev));
                        server_error.set(None);
                    }
                />
                <span class="field-message error" data-testid="dataset-path-error" aria-live="polite">
                    {move || shown_path_error().unwrap_or_default()}
                </span>
            </label>
            <label class="field">
                <span>"Description " <small class="muted">"(optional)"</small></span>
                <textarea
                    rows="2"
                    data-testid="dataset-description"
                    prop:value=move || description.get()
                    on:input=move |ev| description.set(event_target_value(&ev))
                ></textarea>
            </label>
            <Show when=move || other_error().is_some()>
                <p class="alert error" role="alert" data-testid="dataset-error">
                    {move || other_error().unwrap_or_default()}
                </p>
            </Show>
            <div class="actions">
                <button type="submit" class="button primary" data-testid="dataset-submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Indexing…" } else { "Create and index" }}
                </button>
                <button type="button" class="button subtle" data-testid="dataset-cancel" on:click=move |_| on_cancel.run(())>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}
