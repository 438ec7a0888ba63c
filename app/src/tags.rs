//! The tag list of a dataset (its labels, `GET /api/datasets/{id}/labels`): pick, add,
//! rename and delete, with the number of images carrying each and its hotkey (1–9).

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::names::LabelName;

use shared::api::LabelCount;

use crate::api::{self, ApiResult};
use crate::save::sentence;
use crate::use_session;

pub type Labels = LocalResource<ApiResult<Vec<LabelCount>>>;

/// The names in hotkey order (1 is the first).
pub fn names(labels: &Labels) -> Vec<String> {
    labels
        .get()
        .and_then(Result::ok)
        .map(|l| l.into_iter().map(|l| l.name).collect())
        .unwrap_or_default()
}

pub fn names_untracked(labels: &Labels) -> Vec<String> {
    labels
        .get_untracked()
        .and_then(Result::ok)
        .map(|l| l.into_iter().map(|l| l.name).collect())
        .unwrap_or_default()
}

/// Checks a tag name the way the server will: classification tags are ASCII
/// ([`LabelName`]); box labels are 1–64 characters.
pub fn check_name(name: &str, ascii: bool) -> Result<(), String> {
    if ascii {
        LabelName::parse(name)
            .map(|_| ())
            .map_err(|e| sentence(&e.to_string()))
    } else if name.trim().is_empty() {
        Err("Enter a name.".to_owned())
    } else if name.chars().count() > 64 {
        Err("A label is at most 64 characters.".to_owned())
    } else {
        Ok(())
    }
}

#[component]
pub fn TagList(
    dataset: i64,
    labels: Labels,
    /// The highlighted tag (the label new boxes get), if any.
    #[prop(into)]
    active: Signal<Option<String>>,
    /// A tag was clicked.
    on_pick: Callback<String>,
    /// Tags were renamed or deleted: images changed on the server.
    on_changed: Callback<()>,
    /// Classification tags must be ASCII.
    ascii: bool,
    /// What clicking a tag does, shown under the list.
    hint: &'static str,
    /// "Tags" (classification) or "Labels" (boxes).
    title: &'static str,
) -> impl IntoView {
    let session = use_session();
    let error = RwSignal::new(None::<String>);
    let new_name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let editing = RwSignal::new(None::<String>);
    let edit_value = RwSignal::new(String::new());

    let fail = move |e: api::ApiError| {
        session.check(&e);
        error.set(Some(sentence(&e.message)));
    };

    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = new_name.get_untracked().trim().to_owned();
        if let Err(message) = check_name(&name, ascii) {
            error.set(Some(message));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::create_label(dataset, &name).await {
                Ok(_) => {
                    new_name.set(String::new());
                    labels.refetch();
                }
                Err(e) => fail(e),
            }
            busy.set(false);
        });
    };

    let rename = move |old: String| {
        let name = edit_value.get_untracked().trim().to_owned();
        if name == old {
            editing.set(None);
            return;
        }
        if let Err(message) = check_name(&name, ascii) {
            error.set(Some(message));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::rename_label(dataset, &old, &name).await {
                Ok(()) => {
                    editing.set(None);
                    labels.refetch();
                    on_changed.run(());
                }
                Err(e) => fail(e),
            }
            busy.set(false);
        });
    };

    let delete = move |name: String, count: i64| {
        let question = if count > 0 {
            format!("Delete tag \u{201c}{name}\u{201d}? {count} image(s) lose it.")
        } else {
            format!("Delete tag \u{201c}{name}\u{201d}?")
        };
        if !window().confirm_with_message(&question).unwrap_or(false) {
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::delete_label(dataset, &name).await {
                Ok(()) => {
                    labels.refetch();
                    on_changed.run(());
                }
                Err(e) => fail(e),
            }
            busy.set(false);
        });
    };

    let rows = move || {
        let list = match labels.get() {
            None => return view! { <p class="muted small">"Loading tags…"</p> }.into_any(),
            Some(Err(e)) => {
                return view! { <p class="alert error" role="alert">{e.message}</p> }.into_any();
            }
            Some(Ok(list)) => list,
        };
        if list.is_empty() {
            return view! {
                <p class="muted small" data-testid="tags-empty">"None yet: add the first below."</p>
            }
            .into_any();
        }
        view! {
            <ol class="tags" data-testid="tag-list">
                {list
                    .into_iter()
                    .enumerate()
                    .map(|(i, LabelCount { name, count })| {
                        let key = (i < 9).then(|| (i + 1).to_string());
                        let is_active = {
                            let name = name.clone();
                            move || active.with(|a| a.as_deref() == Some(name.as_str()))
                        };
                        let is_editing = {
                            let name = name.clone();
                            move || editing.with(|e| e.as_deref() == Some(name.as_str()))
                        };
                        let pick = {
                            let name = name.clone();
                            move |_| on_pick.run(name.clone())
                        };
                        let start_edit = {
                            let name = name.clone();
                            move |_| {
                                edit_value.set(name.clone());
                                error.set(None);
                                editing.set(Some(name.clone()));
                            }
                        };
                        let submit_edit = {
                            let name = name.clone();
                            move |ev: leptos::ev::SubmitEvent| {
                                ev.prevent_default();
                                rename(name.clone());
                            }
                        };
                        let remove = {
                            let name = name.clone();
                            move |_| delete(name.clone(), count)
                        };
                        view! {
                            <li class="tag" class:active=is_active data-testid="tag" data-name=name.clone()>
                                <Show
                                    when=is_editing
                                    fallback={
                                        let name = name.clone();
                                        let key = key.clone();
                                        move || {
                                            view! {
                                                <button
                                                    class="tag-pick"
                                                    data-testid="tag-pick"
                                                    title=key.as_ref().map(|k| format!("Press {k}"))
                                                    on:click=pick.clone()
                                                >
                                                    <kbd class="tag-key">{key.clone().unwrap_or_default()}</kbd>
                                                    <span class="tag-name">{name.clone()}</span>
                                                    <span class="tag-count" data-testid="tag-count">{count}</span>
                                                </button>
                                                <button
                                                    class="icon-button"
                                                    data-testid="tag-rename"
                                                    title="Rename"
                                                    aria-label=format!("Rename {name}")
                                                    on:click=start_edit.clone()
                                                >
                                                    "✎"
                                                </button>
                                                <button
                                                    class="icon-button danger"
                                                    data-testid="tag-delete"
                                                    title="Delete"
                                                    aria-label=format!("Delete {name}")
                                                    on:click=remove.clone()
                                                >
                                                    "×"
                                                </button>
                                            }
                                        }
                                    }
                                >
                                    <form class="tag-edit" on:submit=submit_edit.clone()>
                                        <input
                                            type="text"
                                            data-testid="tag-rename-input"
                                            aria-label="New name"
                                            autofocus=true
                                            prop:value=move || edit_value.get()
                                            on:input=move |ev| edit_value.set(event_target_value(&ev))
                                            on:keydown=move |ev| {
                                                if ev.key() == "Escape" {
                                                    ev.stop_propagation();
                                                    editing.set(None);
                                                }
                                            }
                                        />
                                        <button type="submit" class="button primary small" data-testid="tag-rename-save" disabled=move || busy.get()>
                                            "Save"
                                        </button>
                                        <button type="button" class="button subtle small" on:click=move |_| editing.set(None)>
                                            "Cancel"
                                        </button>
                                    </form>
                                </Show>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
        }
        .into_any()
    };

    view! {
        <div class="tag-panel" data-testid="tag-panel">
            <h2 class="panel-title">{title}</h2>
            <Transition fallback=|| view! { <p class="muted small">"Loading tags…"</p> }>{rows}</Transition>
            <p class="muted small hint">{hint}</p>
            <form class="tag-add" on:submit=add novalidate=true>
                <input
                    type="text"
                    placeholder=if ascii { "New tag" } else { "New label" }
                    aria-label=if ascii { "New tag name" } else { "New label name" }
                    data-testid="tag-new"
                    autocomplete="off"
                    spellcheck="false"
                    prop:value=move || new_name.get()
                    on:input=move |ev| {
                        new_name.set(event_target_value(&ev));
                        error.set(None);
                    }
                />
                <button type="submit" class="button subtle small" data-testid="tag-add" disabled=move || busy.get()>
                    "Add"
                </button>
            </form>
            <Show when=move || error.with(Option::is_some)>
                <p class="alert error small" role="alert" data-testid="tag-error">
                    {move || error.get().unwrap_or_default()}
                </p>
            </Show>
        </div>
    }
}
