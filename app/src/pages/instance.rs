//! One instance: its facts, its datasets (with the form that indexes a new one) and, for
//! image classification, its training tasks and model versions
//! ([`crate::pages::training`]). A recommendation_recall instance shows its recall
//! workspace ([`crate::pages::recall`]) instead.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::InstanceType;
use shared::api::{CreateDataset, Dataset, Instance};
use shared::names::DatasetName;
use shared::train::Preset;

use crate::api::{self, ApiError};
use crate::form::{FieldMessage, invalid};
use crate::pages::common::{
    ErrorNotice, OpenFormButton, confirm, error_alert, list_or_empty, load_by_id,
};
use crate::pages::recall::RecallWorkspace;
use crate::pages::training::TrainingSection;
use crate::save::sentence;
use crate::{format, use_session};

#[component]
pub fn InstancePage() -> impl IntoView {
    let instance = load_by_id("instance", api::get_instance);

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
                            Err(e) => error_alert(e.message, "instance-error").into_any(),
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
        if !confirm(&format!(
            "Delete instance \u{201c}{name}\u{201d} and everything in it?"
        )) {
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
        <ErrorNotice error=error testid="delete-error"/>
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
                {if !Preset::for_type(instance.kind).is_empty() {
                    view! { <TrainingSection instance=id kind=instance.kind/> }.into_any()
                } else {
                    view! {
                        <section class="section" data-testid="tasks-section">
                            <h2>"Training tasks"</h2>
                            <p class="muted" data-testid="tasks-empty">
                                "Training is available for image classification and object detection instances so far."
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
    let datasets = LocalResource::new(move || session.checked(api::list_datasets(instance)));
    let show_form = RwSignal::new(false);

    view! {
        <section class="section" data-testid="datasets-section">
            <div class="section-head">
                <h2>"Datasets"</h2>
                <OpenFormButton open=show_form testid="new-dataset" label="New dataset"/>
            </div>
            <Show when=move || show_form.get()>
                <CreateDatasetForm instance=instance kind=kind on_cancel=Callback::new(move |()| show_form.set(false))/>
            </Show>
            <Transition fallback=|| view! { <p class="muted">"Loading datasets…"</p> }>
                {move || {
                    datasets
                        .get()
                        .map(|result| {
                            list_or_empty(
                                result,
                                "datasets-error",
                                || {
                                    view! {
                                        <div class="empty" data-testid="datasets-empty">
                                            <p>"No datasets yet."</p>
                                            <p class="muted">{layout_hint(kind)}</p>
                                        </div>
                                    }
                                },
                                |list| {
                                    view! {
                                        <ul class="dataset-list" data-testid="dataset-list">
                                            {list.into_iter().map(|d| view! { <DatasetRow dataset=d/> }).collect_view()}
                                        </ul>
                                    }
                                },
                            )
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
    let shown_name_error = Signal::derive(move || {
        server_error
            .with(|e| {
                e.as_ref()
                    .filter(|e| e.is_for_field("name"))
                    .map(|e| e.message.clone())
            })
            .or_else(|| if touched.get() { name_rule.get() } else { None })
    });
    let shown_path_error = Signal::derive(move || {
        server_error.with(|e| {
            e.as_ref()
                .filter(|e| e.is_for_field("path"))
                .map(|e| e.message.clone())
        })
    });
    let other_error = Signal::derive(move || {
        server_error.with(|e| {
            e.as_ref()
                .filter(|e| !e.is_for_field("name") && !e.is_for_field("path"))
                .map(|e| sentence(&e.message))
        })
    });

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
                    aria-invalid=invalid(shown_name_error)
                    prop:value=move || name.get()
                    on:input=move |ev| {
                        name.set(event_target_value(&ev));
                        touched.set(true);
                        server_error.set(None);
                    }
                />
                <FieldMessage error=shown_name_error testid="dataset-name-error"/>
            </label>
            <label class="field">
                <span>"Path"</span>
                <input
                    type="text"
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="/data/pets or s3://bucket/pets/"
                    data-testid="dataset-path"
                    aria-invalid=invalid(shown_path_error)
                    prop:value=move || path.get()
                    on:input=move |ev| {
                        path.set(event_target_value(&ev));
                        server_error.set(None);
                    }
                />
                <FieldMessage error=shown_path_error testid="dataset-path-error"/>
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
            <ErrorNotice error=other_error testid="dataset-error"/>
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
