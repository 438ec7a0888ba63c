//! A dataset's overview: counts (all / labelled / unlabelled / deleted, per label) that
//! filter the thumbnail grid below them, the files the indexer skipped and why, and the
//! actions: label, re-index, export, delete.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use shared::InstanceType;
use shared::api::{Dataset, Image, ImageStatus, Instance};

use crate::api::{self, ApiResult, ImageFilter};
use crate::pages::common::{
    Breadcrumb, ErrorNotice, confirm, load_by_id, page_by_id, with_instance,
};
use crate::pages::instance::layout_hint;
use crate::save::sentence;
use crate::{format, use_session};

const PER_PAGE: i64 = 48;

/// The dataset and its instance (for the type and the breadcrumb).
pub async fn dataset_and_instance(id: i64) -> ApiResult<(Dataset, Instance)> {
    with_instance(api::get_dataset(id), |d| d.instance_id).await
}

#[component]
pub fn DatasetPage() -> impl IntoView {
    let data = load_by_id("dataset", dataset_and_instance);

    // Lives here, not in the overview, so that it survives the reload after a re-index.
    let notice = RwSignal::new(None::<String>);
    let query = use_query_map();
    let created = query.with_untracked(|q| q.get("created").is_some());
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        match data.get() {
            Some(Ok((d, _))) => {
                if created {
                    notice.set(Some(format!(
                        "Dataset created: {} indexed, {}.",
                        format::count(d.total, "image", "images"),
                        format::count(d.skipped.len() as i64, "file skipped", "files skipped")
                    )));
                }
                true
            }
            _ => false,
        }
    });

    page_by_id("dataset-page", "dataset-error", data, move |(d, i)| {
        view! { <Overview dataset=d instance=i notice=notice on_reload=Callback::new(move |()| data.refetch())/> }
    })
}

#[component]
fn Overview(
    dataset: Dataset,
    instance: Instance,
    notice: RwSignal<Option<String>>,
    on_reload: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let query = use_query_map();
    let id = dataset.id;
    let kind = instance.kind;

    let status = Memo::new(move |_| {
        query.with(|q| {
            q.get("status")
                .and_then(|s| api::parse_status(&s))
                .unwrap_or(ImageStatus::All)
        })
    });
    let label = Memo::new(move |_| query.with(|q| q.get("label")).filter(|l| !l.is_empty()));
    let page = Memo::new(move |_| {
        query
            .with(|q| q.get("page").and_then(|p| p.parse::<i64>().ok()))
            .filter(|p| *p >= 1)
            .unwrap_or(1)
    });
    let created = query.with_untracked(|q| q.get("created").is_some());

    let nav = navigate.clone();
    let go = move |status: ImageStatus, label: Option<String>, page: i64| {
        let mut url = format!("/datasets/{id}?status={}", api::status_str(status));
        if let Some(l) = label {
            url.push_str("&label=");
            url.push_str(&String::from(js_sys::encode_uri_component(&l)));
        }
        if page > 1 {
            url.push_str(&format!("&page={page}"));
        }
        nav(
            &url,
            NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    };

    let images = LocalResource::new(move || {
        let filter = ImageFilter {
            status: status.get(),
            label: label.get(),
        };
        let page = page.get();
        async move {
            session
                .checked(api::list_images(id, &filter, page, PER_PAGE))
                .await
        }
    });

    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let reindex = move |_| {
        busy.set(true);
        error.set(None);
        notice.set(None);
        spawn_local(async move {
            match api::reindex_dataset(id).await {
                Ok(d) => {
                    notice.set(Some(format!(
                        "Re-indexed: {}, {}.",
                        format::count(d.total, "image", "images"),
                        format::count(d.skipped.len() as i64, "file skipped", "files skipped")
                    )));
                    on_reload.run(());
                }
                Err(e) => {
                    session.check(&e);
                    error.set(Some(sentence(&e.message)));
                }
            }
            busy.set(false);
        });
    };

    let instance_id = instance.id;
    let name = dataset.name.clone();
    let nav = navigate.clone();
    let delete = move |_| {
        let question = format!(
            "Delete dataset \u{201c}{name}\u{201d}? Its images stay in storage; labels made here are lost."
        );
        if !confirm(&question) {
            return;
        }
        busy.set(true);
        let nav = nav.clone();
        spawn_local(async move {
            match api::delete_dataset(id).await {
                Ok(()) => nav(&format!("/instances/{instance_id}"), Default::default()),
                Err(e) => {
                    session.check(&e);
                    error.set(Some(sentence(&e.message)));
                    busy.set(false);
                }
            }
        });
    };

    let label_href = if dataset.unlabelled > 0 {
        format!("/datasets/{id}/label?status=unlabelled")
    } else {
        format!("/datasets/{id}/label")
    };
    let export_format = if kind.uses_boxes() { "voc" } else { "folder" };
    let export_name = format!("{}-{export_format}.tar", dataset.name);

    let count_card = {
        let go = go.clone();
        move |what: ImageStatus, title: &'static str, n: i64, testid: &'static str| {
            let go = go.clone();
            view! {
                <button
                    class="count-card"
                    class:active=move || status.get() == what && label.with(Option::is_none)
                    data-testid=testid
                    on:click=move |_| go(what, None, 1)
                >
                    <span class="count-title">{title}</span>
                    <span class="count-value" data-testid="count-value">{n}</span>
                </button>
            }
        }
    };

    let per_label: Vec<(String, i64)> = dataset.per_label.clone().into_iter().collect();
    let (go_labels, go_clear, go_grid) = (go.clone(), go.clone(), go.clone());
    let skipped = dataset.skipped.clone();
    let open_skipped = created || skipped.len() <= 10;

    view! {
        <Breadcrumb instance_id=instance_id instance_name=instance.name.clone()/>
        <div class="page-head">
            <div>
                <h1 data-testid="dataset-title">{dataset.name.clone()}</h1>
                <p class="muted path" data-testid="dataset-path-shown">{dataset.path.clone()}</p>
                {(!dataset.description.is_empty()).then(|| view! { <p>{dataset.description.clone()}</p> })}
            </div>
            <div class="head-actions">
                <A href=label_href attr:class="button primary" attr:data-testid="start-labelling">
                    "Label images"
                </A>
                <button class="button subtle" data-testid="reindex" on:click=reindex disabled=move || busy.get()>
                    "Re-index"
                </button>
                <a
                    class="button subtle"
                    data-testid="export"
                    href=api::export_url(id, export_format)
                    download=export_name
                    title=format!("Labelled images in the input layout ({})", if kind.uses_boxes() { "Pascal VOC" } else { "folder per label" })
                >
                    "Export"
                </a>
                <button class="button danger" data-testid="delete-dataset" on:click=delete disabled=move || busy.get()>
                    "Delete"
                </button>
            </div>
        </div>
        <Show when=move || notice.with(Option::is_some)>
            <p class="alert ok" role="status" data-testid="dataset-notice">{move || notice.get().unwrap_or_default()}</p>
        </Show>
        <ErrorNotice error=error testid="dataset-action-error"/>

        <div class="counts" data-testid="counts">
            {count_card(ImageStatus::All, "All", dataset.total, "count-all")}
            {count_card(ImageStatus::Labelled, "Labelled", dataset.labelled, "count-labelled")}
            {count_card(ImageStatus::Unlabelled, "Unlabelled", dataset.unlabelled, "count-unlabelled")}
            {count_card(ImageStatus::Deleted, "Deleted", dataset.deleted, "count-deleted")}
        </div>

        <section class="section">
            <h2>{if kind.uses_boxes() { "Images per label" } else { "Images per tag" }}</h2>
            {if per_label.is_empty() {
                view! { <p class="muted" data-testid="per-label-empty">"No labels yet."</p> }.into_any()
            } else {
                let go = go_labels.clone();
                view! {
                    <ul class="chips" data-testid="per-label">
                        {per_label
                            .into_iter()
                            .map(|(name, n)| {
                                let go = go.clone();
                                let filter_name = name.clone();
                                let this = name.clone();
                                view! {
                                    <li>
                                        <button
                                            class="chip"
                                            class:active=move || label.with(|l| l.as_deref() == Some(this.as_str()))
                                            data-testid="label-chip"
                                            data-name=name.clone()
                                            on:click=move |_| go(ImageStatus::All, Some(filter_name.clone()), 1)
                                        >
                                            <span class="chip-name">{name.clone()}</span>
                                            <span class="chip-count" data-testid="label-chip-count">{n}</span>
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
            <p class="muted small">{guidance(kind)}</p>
        </section>

        {(!skipped.is_empty())
            .then(|| {
                view! {
                    <details class="section skipped" open=open_skipped data-testid="skipped-report">
                        <summary>
                            <strong>{format::count(skipped.len() as i64, "file was skipped", "files were skipped")}</strong>
                            " when indexing"
                        </summary>
                        <table class="table">
                            <thead><tr><th>"File"</th><th>"Why"</th></tr></thead>
                            <tbody>
                                {skipped
                                    .into_iter()
                                    .map(|s| {
                                        view! {
                                            <tr data-testid="skipped-row">
                                                <td class="path">{s.path}</td>
                                                <td>{s.reason}</td>
                                            </tr>
                                        }
                                    })
                                    .collect_view()}
                            </tbody>
                        </table>
                    </details>
                }
            })}

        <section class="section">
            <div class="section-head">
                <h2>
                    "Images"
                    {move || {
                        let mut what = match status.get() {
                            ImageStatus::All => String::new(),
                            s => format!(" · {}", api::status_str(s)),
                        };
                        if let Some(l) = label.get() {
                            what.push_str(&format!(" · {l}"));
                        }
                        what
                    }}
                </h2>
                <Show when=move || status.get() != ImageStatus::All || label.with(Option::is_some)>
                    <button class="button subtle small" data-testid="clear-filter" on:click={
                        let go = go_clear.clone();
                        move |_| go(ImageStatus::All, None, 1)
                    }>
                        "Show all"
                    </button>
                </Show>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading images…"</p> }>
                {move || {
                    let go = go_grid.clone();
                    images
                        .get()
                        .map(|result| match result {
                            Ok(p) if p.items.is_empty() => {
                                view! {
                                    <div class="empty" data-testid="images-empty">
                                        <p>"No images here."</p>
                                        <p class="muted">{layout_hint(kind)}</p>
                                    </div>
                                }
                                    .into_any()
                            }
                            Ok(p) => {
                                let pages = (p.total + p.per_page - 1) / p.per_page.max(1);
                                let current = p.page;
                                let deleted = status.get_untracked() == ImageStatus::Deleted;
                                let (go_prev, go_next) = (go.clone(), go.clone());
                                view! {
                                    <ul class="thumb-grid" data-testid="image-grid">
                                        {p.items
                                            .into_iter()
                                            .map(|img| view! { <Thumb image=img kind=kind deleted=deleted on_restored=Callback::new(move |()| { images.refetch(); on_reload.run(()); })/> })
                                            .collect_view()}
                                    </ul>
                                    <div class="pager">
                                        <button
                                            class="button subtle small"
                                            disabled={current <= 1}
                                            on:click=move |_| go_prev(status.get_untracked(), label.get_untracked(), current - 1)
                                        >
                                            "‹ Previous"
                                        </button>
                                        <span class="muted">{format!("Page {current} of {} · {}", pages.max(1), format::count(p.total, "image", "images"))}</span>
                                        <button
                                            class="button subtle small"
                                            disabled={current >= pages}
                                            on:click=move |_| go_next(status.get_untracked(), label.get_untracked(), current + 1)
                                        >
                                            "Next ›"
                                        </button>
                                    </div>
                                }
                                    .into_any()
                            }
                            Err(e) => view! { <div class="alert error" role="alert">{e.message}</div> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

/// Advice for good training data (SPEC §3).
fn guidance(kind: InstanceType) -> &'static str {
    match kind {
        InstanceType::ImageClassification => {
            "Aim for more than 20 images per tag, about as many for each tag, taken like the real scene and from several angles."
        }
        InstanceType::ObjectDetection => {
            "Aim for more than 50 boxes per label, about as many for each label, on images like the real scene, from several angles."
        }
        _ => "Label images like the real scene, from several angles.",
    }
}

/// What an image carries, in a few words.
pub fn caption(img: &Image) -> String {
    if let Some(l) = img.annotation.labels.first() {
        l.clone()
    } else if !img.annotation.boxes.is_empty() {
        format::count(img.annotation.boxes.len() as i64, "box", "boxes")
    } else {
        "unlabelled".to_owned()
    }
}

#[component]
fn Thumb(
    image: Image,
    kind: InstanceType,
    deleted: bool,
    on_restored: Callback<()>,
) -> impl IntoView {
    let session = use_session();
    let error = RwSignal::new(None::<String>);
    let href = if kind.uses_boxes() {
        format!("/datasets/{}/label?image={}", image.dataset_id, image.id)
    } else {
        format!("/datasets/{}/label", image.dataset_id)
    };
    let id = image.id;
    let restore = move |_| {
        spawn_local(async move {
            match api::restore_image(id).await {
                Ok(_) => on_restored.run(()),
                Err(e) => {
                    session.check(&e);
                    error.set(Some(sentence(&e.message)));
                }
            }
        });
    };
    let caption = caption(&image);
    let path = image.path.clone();
    let alt = image.path.clone();
    view! {
        <li class="thumb" data-testid="thumb" data-image-id=image.id data-path=path.clone()>
            <A href=href attr:class="thumb-link">
                <img
                    src=api::thumbnail_url(image.id, 256)
                    alt=alt
                    loading="lazy"
                    decoding="async"
                    width="256"
                    height="256"
                />
            </A>
            <div class="thumb-caption">
                <span class="thumb-label" class:unlabelled=!image.labelled data-testid="thumb-caption">{caption}</span>
                <span class="muted thumb-path" title=path.clone()>{path.clone()}</span>
            </div>
            {deleted
                .then(|| {
                    view! {
                        <button class="button subtle small" data-testid="restore" on:click=restore>
                            "Restore"
                        </button>
                    }
                })}
            <Show when=move || error.with(Option::is_some)>
                <p class="alert error small" role="alert">{move || error.get().unwrap_or_default()}</p>
            </Show>
        </li>
    }
}
