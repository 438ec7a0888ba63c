//! Classification labelling: a grid of thumbnails (3 / 6 / 9 per page as in SPEC §4, or
//! 24 / 48 / 100), selection by click, shift-click and Ctrl/⌘-click, tags by click or the
//! number keys, skip, paging by keyboard, a preview of the result, and "finish".
//!
//! The images matching the filter are loaded once (a snapshot, in the server's order) and
//! paged here, so labelling an image never shifts the pages under the user's hands. Every
//! change is saved at once through [`Saver`].

use std::collections::HashMap;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_query_map};
use shared::api::{Annotation, Dataset, Image, ImageStatus, Instance, Suggestions};

use crate::api::{self, ImageFilter};
use crate::help::{HelpTopic, help_topic, modified, release_focus, typing, use_help};
use crate::pages::common::{Breadcrumb, ErrorNotice};
use crate::pages::label::{ImageSnapshot, SnapshotStatus};
use crate::save::{SaveStatus, sentence, use_saver};
use crate::tags::{self, TagList};
use crate::{format, use_session};

const PAGE_SIZES: [usize; 6] = [3, 6, 9, 24, 48, 100];
/// "Accept confident" takes the suggestions at least this sure.
const ACCEPT_ALL_ABOVE: f64 = 0.9;
const DEFAULT_PER_PAGE: usize = 9;

#[component]
pub fn ClassifyPage(dataset: Dataset, instance: Instance) -> impl IntoView {
    help_topic(HelpTopic::Classification);
    let session = use_session();
    let help = use_help();
    let navigate = use_navigate();
    let query = use_query_map();
    let id = dataset.id;

    // Where we are, from the address (so a reload comes back here).
    let status = Memo::new(move |_| {
        query.with(|q| {
            q.get("status")
                .and_then(|s| api::parse_status(&s))
                .unwrap_or(ImageStatus::All)
        })
    });
    let label_filter = Memo::new(move |_| query.with(|q| q.get("label")).filter(|l| !l.is_empty()));
    let per_page = Memo::new(move |_| {
        query
            .with(|q| q.get("per").and_then(|p| p.parse::<usize>().ok()))
            .filter(|p| PAGE_SIZES.contains(p))
            .unwrap_or(DEFAULT_PER_PAGE)
    });
    let page = Memo::new(move |_| {
        query
            .with(|q| q.get("page").and_then(|p| p.parse::<usize>().ok()))
            .filter(|p| *p >= 1)
            .unwrap_or(1)
    });

    let nav = navigate.clone();
    let go = move |status: ImageStatus, label: Option<String>, page: usize, per: usize| {
        let mut url = format!(
            "/datasets/{id}/label?status={}&per={per}&page={page}",
            api::status_str(status)
        );
        if let Some(l) = label {
            url.push_str("&label=");
            url.push_str(&String::from(js_sys::encode_uri_component(&l)));
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

    // The snapshot of images being labelled.
    let snapshot = ImageSnapshot::new(id, move || ImageFilter {
        status: status.get(),
        label: label_filter.get(),
    });
    let (items, reload) = (snapshot.items, snapshot.reload);
    let positions = Memo::new(move |_| {
        items.with(|v| {
            v.iter()
                .enumerate()
                .map(|(i, img)| (img.id, i))
                .collect::<HashMap<i64, usize>>()
        })
    });

    let pages = Memo::new(move |_| items.with(Vec::len).div_ceil(per_page.get()).max(1));
    let page_ids = Memo::new(move |_| {
        let per = per_page.get();
        let start = (page.get().min(pages.get()) - 1) * per;
        items.with(|v| {
            v.iter()
                .skip(start)
                .take(per)
                .map(|i| i.id)
                .collect::<Vec<i64>>()
        })
    });

    let labels: tags::Labels = LocalResource::new(move || session.checked(api::list_labels(id)));
    let action_error = RwSignal::new(None::<String>);

    // Suggestions (assisted labelling): off until asked for; fitted again on the server
    // after each batch of saves; "Check labels" adds the doubtful list.
    let suggest_on = RwSignal::new(false);
    let check_labels = RwSignal::new(false);
    let suggestions = RwSignal::new(None::<Suggestions>);
    let suggest_refresh = RwSignal::new(0u64);
    let suggest_busy = RwSignal::new(false);
    let suggested = Memo::new(move |_| {
        suggestions.with(|s| {
            s.iter()
                .flat_map(|s| &s.suggestions)
                .map(|x| (x.image_id, (x.label.clone(), x.confidence)))
                .collect::<HashMap<i64, (String, f64)>>()
        })
    });
    let doubted = Memo::new(move |_| {
        suggestions.with(|s| {
            s.iter()
                .flat_map(|s| &s.doubtful)
                .map(|x| (x.image_id, (x.suggested.clone(), x.confidence)))
                .collect::<HashMap<i64, (String, f64)>>()
        })
    });
    Effect::new(move |_| {
        let generation = suggest_refresh.get();
        let doubtful = check_labels.get();
        if !suggest_on.get() {
            suggestions.set(None);
            suggest_busy.set(false);
            return;
        }
        suggest_busy.set(true);
        spawn_local(async move {
            // Poll while the embeddings are computed; a newer request ends this one.
            while suggest_refresh.get_untracked() == generation && suggest_on.get_untracked() {
                match session.checked(api::get_suggestions(id, doubtful)).await {
                    Ok(s) => {
                        let computing = s.state == "computing";
                        suggestions.set(Some(s));
                        if !computing {
                            if suggest_refresh.get_untracked() == generation {
                                suggest_busy.set(false);
                            }
                            break;
                        }
                        crate::timers::sleep(1000).await;
                    }
                    Err(e) => {
                        suggest_busy.set(false);
                        suggest_on.set(false);
                        action_error.set(Some(e.to_string()));
                        break;
                    }
                }
            }
        });
    });

    let saver = use_saver();
    saver.on_refused(Callback::new(
        move |(image, confirmed): (i64, Annotation)| {
            // The server refused: show what it holds.
            items.update(|v| {
                if let Some(img) = v.iter_mut().find(|i| i.id == image) {
                    img.labelled = !confirmed.is_empty();
                    img.annotation = confirmed;
                }
            });
        },
    ));
    // Counts come from the server once it has everything.
    Effect::new(move |prev: Option<u64>| {
        let saved = saver.saved.get();
        let idle = saver.pending.get() == 0;
        if idle && prev.is_some_and(|p| p != saved) {
            labels.refetch();
            if suggest_on.get_untracked() {
                suggest_refresh.update(|n| *n += 1);
            }
        }
        if idle { saved } else { prev.unwrap_or(saved) }
    });

    let selected = RwSignal::new(Vec::<i64>::new());
    let anchor = RwSignal::new(None::<i64>);
    let preview = RwSignal::new(false);
    let notice = RwSignal::new(None::<String>);
    // Skipped images with their places in the snapshot, for "Undo".
    let last_skipped = RwSignal::new(Vec::<(usize, Image)>::new());

    // Selection does not survive a page change.
    Effect::new(move |_| {
        page_ids.track();
        selected.set(Vec::new());
        anchor.set(None);
    });

    // One image at a time: move on to the next, as a labeller expects.
    let advance = move |ids: &[i64]| {
        if let [one] = ids[..] {
            let page = page_ids.get_untracked();
            if let Some(pos) = page.iter().position(|&i| i == one)
                && let Some(&next) = page.get(pos + 1)
            {
                selected.set(vec![next]);
                anchor.set(Some(next));
            }
        }
    };
    // Gives each image of `ids` the tag `tag_of` picks for it (`None`: leaves it alone; a
    // `None` tag clears it), in the snapshot at once and through the save queue; returns how
    // many images changed.
    let retag = move |ids: &[i64], tag_of: &dyn Fn(&Image) -> Option<Option<String>>| -> usize {
        let mut changes = Vec::new();
        items.update(|v| {
            for img in v.iter_mut().filter(|i| ids.contains(&i.id)) {
                let Some(tag) = tag_of(img) else { continue };
                let new = Annotation {
                    labels: tag.iter().cloned().collect(),
                    boxes: Vec::new(),
                };
                if img.annotation != new {
                    changes.push((img.id, img.revision, img.annotation.clone(), new.clone()));
                    img.annotation = new;
                    img.labelled = tag.is_some();
                }
            }
        });
        let n = changes.len();
        for (image, revision, before, new) in changes {
            saver.save(image, revision, new, &before);
        }
        n
    };
    let assign = move |tag: Option<String>| {
        let ids = selected.get_untracked();
        if ids.is_empty() {
            notice.set(Some(
                "Select images first: click one, or press Ctrl+A for the whole page.".into(),
            ));
            return;
        }
        notice.set(None);
        retag(&ids, &|_| Some(tag.clone()));
        advance(&ids);
    };
    // Accepting saves the suggested tag through the ordinary save path, as if typed.
    let accept = move |ids: Vec<i64>| -> usize {
        let hints = suggested.get_untracked();
        retag(&ids, &|img| {
            let (label, _) = hints.get(&img.id).filter(|_| !img.labelled)?;
            Some(Some(label.clone()))
        })
    };
    let accept_selected = move || {
        let ids = selected.get_untracked();
        if ids.is_empty() {
            notice.set(Some(
                "Select images first, then press Enter to accept their suggestions.".into(),
            ));
            return;
        }
        if accept(ids.clone()) == 0 {
            notice.set(Some(
                "No suggestion to accept: turn suggestions on, or pick unlabelled images.".into(),
            ));
            return;
        }
        notice.set(None);
        advance(&ids);
    };
    // Review the page, retag the wrong suggestions, then take the rest in one go.
    let accept_page = move |_| {
        let n = accept(page_ids.get_untracked());
        notice.set(Some(format!("Accepted {n} suggestion(s) on this page.")));
    };
    let accept_confident = move |_| {
        let ids: Vec<i64> = suggested
            .get_untracked()
            .into_iter()
            .filter(|(_, (_, c))| *c >= ACCEPT_ALL_ABOVE)
            .map(|(id, _)| id)
            .collect();
        let n = accept(ids);
        notice.set(Some(format!(
            "Accepted {n} suggestion(s) of {:.0}% or more.",
            ACCEPT_ALL_ABOVE * 100.0
        )));
    };
    let assign_index = move |n: usize| {
        let names = tags::names_untracked(&labels);
        match names.get(n) {
            Some(name) => assign(Some(name.clone())),
            None => notice.set(Some(format!(
                "There is no tag {}: add tags on the left.",
                n + 1
            ))),
        }
    };

    let skip = move || {
        let ids = selected.get_untracked();
        if ids.is_empty() {
            notice.set(Some("Select the images to skip first.".into()));
            return;
        }
        action_error.set(None);
        spawn_local(async move {
            let mut done = Vec::new();
            for image in ids {
                match api::delete_image(image).await {
                    Ok(()) => done.push(image),
                    Err(e) => {
                        session.check(&e);
                        action_error.set(Some(format!("Not skipped: {}", sentence(&e.message))));
                        break;
                    }
                }
            }
            if !done.is_empty() {
                let mut removed = Vec::new();
                items.update(|v| {
                    let mut i = 0;
                    let mut place = 0;
                    while i < v.len() {
                        if done.contains(&v[i].id) {
                            removed.push((place, v.remove(i)));
                        } else {
                            i += 1;
                        }
                        place += 1;
                    }
                });
                notice.set(Some(format!(
                    "Skipped {}: they no longer count in the dataset.",
                    format::count(done.len() as i64, "image", "images")
                )));
                last_skipped.set(removed);
            }
        });
    };
    let undo_skip = move |_| {
        let skipped = last_skipped.get_untracked();
        spawn_local(async move {
            let mut restored = Vec::new();
            for (place, image) in skipped {
                match api::restore_image(image.id).await {
                    Ok(img) => restored.push((place, img)),
                    Err(e) => {
                        session.check(&e);
                        action_error.set(Some(format!("Not restored: {}", sentence(&e.message))));
                        break;
                    }
                }
            }
            // Back where they were, in the order they were taken out.
            items.update(|v| {
                for (place, img) in restored {
                    v.insert(place.min(v.len()), img);
                }
            });
            last_skipped.set(Vec::new());
            notice.set(None);
        });
    };

    let go_page = {
        let go = go.clone();
        move |p: usize| {
            let p = p.clamp(1, pages.get_untracked());
            go(
                status.get_untracked(),
                label_filter.get_untracked(),
                p,
                per_page.get_untracked(),
            );
        }
    };
    // Least certain first: each label then teaches the most. Sorted once, on request, so
    // the grid does not move under the pointer on every refresh.
    let first_page = go_page.clone();
    let least_certain_first = move |_| {
        let hints = suggested.get_untracked();
        items.update(|v| {
            v.sort_by(|a, b| {
                let key = |i: &Image| match (i.labelled, hints.get(&i.id)) {
                    (false, Some((_, c))) => *c,
                    (false, None) => 2.0,
                    (true, _) => 3.0,
                };
                key(a).total_cmp(&key(b))
            });
        });
        first_page(1);
    };

    let select_page = move || {
        let ids = page_ids.get_untracked();
        anchor.set(ids.first().copied());
        selected.set(ids);
    };

    let finishing = RwSignal::new(false);
    let nav = navigate.clone();
    Effect::new(move |_| {
        // Once everything is saved (a refusal stays on the banner, which follows the user).
        if finishing.get() && saver.pending.get() == 0 {
            nav(&format!("/datasets/{id}"), Default::default());
        }
    });

    // Keyboard shortcuts (see help.rs).
    let keys = {
        let go_page = go_page.clone();
        window_event_listener(leptos::ev::keydown, move |ev| {
            if help.open.get_untracked() || typing(&ev) {
                return;
            }
            let key = ev.key();
            if (ev.ctrl_key() || ev.meta_key()) && key.eq_ignore_ascii_case("a") {
                ev.prevent_default();
                select_page();
                return;
            }
            if modified(&ev) {
                return;
            }
            let page = page.get_untracked();
            match key.as_str() {
                "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" => {
                    assign_index(key.parse::<usize>().unwrap_or(1) - 1);
                }
                "0" => assign(None),
                "Enter" => accept_selected(),
                "s" | "S" => skip(),
                "p" | "P" => preview.update(|p| *p = !*p),
                "ArrowRight" | "d" | "D" | "PageDown" => go_page(page + 1),
                "ArrowLeft" | "a" | "A" | "PageUp" => go_page(page.saturating_sub(1)),
                "Escape" => {
                    selected.set(Vec::new());
                    anchor.set(None);
                    preview.set(false);
                }
                _ => return,
            }
            ev.prevent_default();
        })
    };
    on_cleanup(move || keys.remove());

    let click = move |image: i64, ev: web_sys::MouseEvent| {
        if ev.shift_key() {
            let ids = page_ids.get_untracked();
            let from = anchor
                .get_untracked()
                .and_then(|a| ids.iter().position(|&i| i == a));
            let to = ids.iter().position(|&i| i == image);
            if let (Some(a), Some(b)) = (from, to) {
                let (a, b) = (a.min(b), a.max(b));
                selected.set(ids[a..=b].to_vec());
                return;
            }
        }
        if ev.ctrl_key() || ev.meta_key() {
            selected.update(|s| {
                if let Some(pos) = s.iter().position(|&i| i == image) {
                    s.remove(pos);
                } else {
                    s.push(image);
                }
            });
        } else {
            selected.set(vec![image]);
        }
        anchor.set(Some(image));
    };

    let thumb_size = move || if per_page.get() <= 9 { 512 } else { 256 };
    let size_class = move || match per_page.get() {
        0..=9 => "grid large",
        10..=48 => "grid medium",
        _ => "grid small",
    };

    let active_tag = Signal::derive(move || {
        // The tag all selected images share, highlighted in the list.
        let ids = selected.get();
        let pos = positions.get();
        items.with(|v| {
            let mut tags = ids
                .iter()
                .filter_map(|i| pos.get(i))
                .map(|&p| v[p].annotation.labels.first().cloned());
            let first = tags.next()??;
            tags.all(|t| t.as_deref() == Some(first.as_str()))
                .then_some(first)
        })
    });

    let go_filter = go.clone();
    let on_filter = move |ev: leptos::ev::Event| {
        let value = event_target_value(&ev);
        release_focus(&ev);
        let (status, label) = match value.split_once(':') {
            Some(("label", l)) => (ImageStatus::All, Some(l.to_owned())),
            _ => (api::parse_status(&value).unwrap_or(ImageStatus::All), None),
        };
        go_filter(status, label, 1, per_page.get_untracked());
    };
    let go_per = go.clone();
    let on_per = move |ev: leptos::ev::Event| {
        let per = event_target_value(&ev)
            .parse::<usize>()
            .unwrap_or(DEFAULT_PER_PAGE);
        // Keep the first image of the page in view.
        let first = (page.get_untracked() - 1) * per_page.get_untracked();
        go_per(
            status.get_untracked(),
            label_filter.get_untracked(),
            first / per + 1,
            per,
        );
    };
    let filter_value = move || match label_filter.get() {
        Some(l) => format!("label:{l}"),
        None => api::status_str(status.get()).to_owned(),
    };

    let suggest_status = move || {
        suggestions.with(|s| match s {
            None => "Asking the server…".to_owned(),
            Some(s) if s.state == "computing" => {
                format!("Reading the images: {:.0}%", s.progress * 100.0)
            }
            Some(s) if s.suggestions.is_empty() => {
                let short: Vec<String> = s
                    .labels
                    .iter()
                    .filter(|l| (l.count as usize) < s.min_per_label)
                    .map(|l| format!("{} has {}", l.name, l.count))
                    .collect();
                if s.labels.len() < 2 || !short.is_empty() {
                    format!(
                        "Tag at least {} images with each of two or more tags to get suggestions{}.",
                        s.min_per_label,
                        if short.is_empty() { String::new() } else { format!(" ({})", short.join(", ")) }
                    )
                } else {
                    "Every image has a tag.".to_owned()
                }
            }
            Some(s) => {
                let labelled: i64 = s.labels.iter().map(|l| l.count).sum();
                let mut text = format!(
                    "{} suggestions learnt from {labelled} tagged images. Enter accepts a selected image's.",
                    s.suggestions.len()
                );
                if check_labels.get() {
                    text.push_str(&format!(" {} tags look doubtful (marked “or …?”).", s.doubtful.len()));
                }
                text
            }
        })
    };
    let (prev_page, next_page) = (go_page.clone(), go_page.clone());
    view! {
        <Breadcrumb
            instance_id=instance.id
            instance_name=instance.name.clone()
            dataset=(id, dataset.name.clone())
        />
        <div class="label-head">
            <h1>"Label " <span class="muted">{dataset.name.clone()}</span></h1>
            <div class="head-actions">
                <SaveStatus/>
                <button
                    class="button subtle"
                    class:pressed=move || preview.get()
                    data-testid="preview-toggle"
                    aria-pressed=move || if preview.get() { "true" } else { "false" }
                    on:click=move |_| preview.update(|p| *p = !*p)
                    title="Preview the result (P)"
                >
                    {move || if preview.get() { "Back to labelling" } else { "Preview" }}
                </button>
                <button
                    class="button primary"
                    data-testid="finish"
                    disabled=move || finishing.get()
                    on:click=move |_| finishing.set(true)
                >
                    {move || if finishing.get() { "Saving…" } else { "Finish labelling" }}
                </button>
            </div>
        </div>
        <ErrorNotice error=action_error testid="action-error"/>
        <div class="label-layout">
            <aside class="side">
                <TagList
                    dataset=id
                    labels=labels
                    active=active_tag
                    on_pick=Callback::new(move |name: String| assign(Some(name)))
                    on_changed=Callback::new(move |()| reload.update(|n| *n += 1))
                    ascii=true
                    title="Tags"
                    hint="Click a tag or press its number to tag the selected images; 0 removes the tag."
                />
                <div class="side-actions">
                    <button class="button subtle small" data-testid="clear-label" on:click=move |_| assign(None) title="0">
                        "Remove tag"
                    </button>
                    <button class="button subtle small" data-testid="skip" on:click=move |_| skip() title="S">
                        "Skip"
                    </button>
                </div>
                <div class="suggest-panel" data-testid="suggest-panel">
                    <Toggle value=suggest_on testid="suggest-toggle" text="Suggest tags"/>
                    <Show when=move || suggest_on.get()>
                        <p
                            class="muted small"
                            data-testid="suggest-status"
                            data-busy=move || if suggest_busy.get() { "true" } else { "false" }
                        >
                            {suggest_status}
                        </p>
                        <button class="button subtle small" data-testid="accept-page" on:click=accept_page>
                            "Accept this page"
                        </button>
                        <button class="button subtle small" data-testid="accept-confident" on:click=accept_confident>
                            {format!("Accept all ≥ {:.0}%", ACCEPT_ALL_ABOVE * 100.0)}
                        </button>
                        <button class="button subtle small" data-testid="least-certain" on:click=least_certain_first.clone()>
                            "Least certain first"
                        </button>
                        <Toggle value=check_labels testid="check-labels" text="Check my labels"/>
                    </Show>
                </div>
            </aside>
            <div class="work">
                <div class="toolbar">
                    <label class="inline-field">
                        <span>"Show"</span>
                        <select data-testid="filter" on:change=on_filter prop:value=filter_value>
                            <option value="all">"All images"</option>
                            <option value="unlabelled">"Unlabelled"</option>
                            <option value="labelled">"Labelled"</option>
                            {move || {
                                tags::names(&labels)
                                    .into_iter()
                                    .map(|n| view! { <option value=format!("label:{n}")>{format!("Tag: {n}")}</option> })
                                    .collect_view()
                            }}
                        </select>
                    </label>
                    <label class="inline-field">
                        <span>"Per page"</span>
                        <select data-testid="per-page" on:change=on_per prop:value=move || per_page.get().to_string()>
                            {PAGE_SIZES.iter().map(|n| view! { <option value=n.to_string()>{*n}</option> }).collect_view()}
                        </select>
                    </label>
                    <button class="button subtle small" data-testid="select-page" on:click=move |_| select_page() title="Ctrl+A">
                        "Select page"
                    </button>
                    <span class="muted small" data-testid="selection-count">
                        {move || match selected.with(Vec::len) {
                            0 => String::new(),
                            n => format!("{n} selected"),
                        }}
                    </span>
                    <div class="pager end">
                        <button
                            class="button subtle small"
                            data-testid="prev-page"
                            title="Previous page (←)"
                            disabled={move || page.get() <= 1}
                            on:click=move |_| prev_page(page.get_untracked().saturating_sub(1))
                        >
                            "‹"
                        </button>
                        <span data-testid="page-info">
                            {move || format!("Page {} of {}", page.get().min(pages.get()), pages.get())}
                        </span>
                        <button
                            class="button subtle small"
                            data-testid="next-page"
                            title="Next page (→)"
                            disabled={move || page.get() >= pages.get()}
                            on:click=move |_| next_page(page.get_untracked() + 1)
                        >
                            "›"
                        </button>
                    </div>
                </div>
                <Show when=move || notice.with(Option::is_some)>
                    <p class="notice" role="status" data-testid="label-notice">
                        <span>{move || notice.get().unwrap_or_default()}</span>
                        <Show when=move || last_skipped.with(|s| !s.is_empty())>
                            <button class="button subtle small" data-testid="undo-skip" on:click=undo_skip>
                                "Undo"
                            </button>
                        </Show>
                    </p>
                </Show>
                <SnapshotStatus snapshot=snapshot/>
                <Show when=move || !preview.get() fallback=move || view! { <Preview items=items labels=labels/> }>
                    <ul
                        class=size_class
                        role="listbox"
                        aria-multiselectable="true"
                        aria-label="Images"
                        data-testid="label-grid"
                    >
                        <For each=move || page_ids.get() key=|id| *id let:image>
                            <GridItem
                                image=image
                                items=items
                                positions=positions
                                selected=selected
                                thumb_size=Signal::derive(thumb_size)
                                suggested=suggested
                                doubted=doubted
                                on_click=Callback::new(move |ev: web_sys::MouseEvent| click(image, ev))
                            />
                        </For>
                    </ul>
                </Show>
            </div>
        </div>
    }
}

/// A labelled checkbox bound to `value`.
#[component]
fn Toggle(value: RwSignal<bool>, testid: &'static str, text: &'static str) -> impl IntoView {
    view! {
        <label class="check">
            <input
                type="checkbox"
                data-testid=testid
                prop:checked=move || value.get()
                on:change=move |ev| value.set(event_target_checked(&ev))
            />
            " "
            {text}
        </label>
    }
}

#[component]
fn GridItem(
    image: i64,
    items: RwSignal<Vec<Image>>,
    positions: Memo<HashMap<i64, usize>>,
    selected: RwSignal<Vec<i64>>,
    thumb_size: Signal<u32>,
    suggested: Memo<HashMap<i64, (String, f64)>>,
    doubted: Memo<HashMap<i64, (String, f64)>>,
    on_click: Callback<web_sys::MouseEvent>,
) -> impl IntoView {
    let info = Memo::new(move |_| {
        let pos = positions.with(|p| p.get(&image).copied());
        items.with(|v| {
            pos.and_then(|p| v.get(p))
                .map(|i| (i.path.clone(), i.annotation.labels.first().cloned()))
                .unwrap_or_default()
        })
    });
    let is_selected = move || selected.with(|s| s.contains(&image));
    let label = move || info.with(|(_, l)| l.clone());
    // A suggestion on an untagged image, a doubt on a tagged one.
    let hint = move || match label() {
        None => suggested.with(|m| {
            m.get(&image)
                .map(|(l, c)| (format!("{l}? {:.0}%", c * 100.0), l.clone(), false))
        }),
        Some(_) => doubted.with(|m| {
            m.get(&image)
                .map(|(l, _)| (format!("or {l}?"), l.clone(), true))
        }),
    };
    view! {
        <li
            class="grid-item"
            class:selected=is_selected
            class:labelled=move || label().is_some()
            role="option"
            aria-selected=move || if is_selected() { "true" } else { "false" }
            data-testid="grid-item"
            data-image-id=image
            data-label=move || label().unwrap_or_default()
            data-path=move || info.with(|(p, _)| p.clone())
            on:click=move |ev| on_click.run(ev)
        >
            <img
                src=move || api::thumbnail_url(image, thumb_size.get())
                alt=move || info.with(|(p, _)| p.clone())
                draggable="false"
                decoding="async"
            />
            <span class="grid-label" data-testid="grid-label">
                {move || label().unwrap_or_else(|| "—".to_owned())}
            </span>
            {move || {
                hint()
                    .map(|(text, suggested, doubt)| {
                        view! {
                            <span
                                class="grid-hint"
                                class:doubt=doubt
                                data-testid=if doubt { "grid-doubt" } else { "grid-suggestion" }
                                data-suggested=suggested
                            >
                                {text}
                            </span>
                        }
                    })
            }}
            <span class="grid-check" aria-hidden="true">"✓"</span>
        </li>
    }
}

/// A tag (`None`: unlabelled) and its images (id, path).
type Group = (Option<String>, Vec<(i64, String)>);

/// The result so far: every image of the snapshot under its tag.
#[component]
fn Preview(items: RwSignal<Vec<Image>>, labels: tags::Labels) -> impl IntoView {
    const SHOWN: usize = 24;
    let groups = move || {
        let order = tags::names(&labels);
        let mut groups: Vec<Group> = order.into_iter().map(|n| (Some(n), Vec::new())).collect();
        groups.push((None, Vec::new()));
        items.with(|v| {
            for img in v {
                let tag = img.annotation.labels.first().cloned();
                let slot = match groups.iter().position(|(g, _)| *g == tag) {
                    Some(i) => i,
                    None => {
                        groups.insert(groups.len() - 1, (tag.clone(), Vec::new()));
                        groups.len() - 2
                    }
                };
                groups[slot].1.push((img.id, img.path.clone()));
            }
        });
        groups.retain(|(_, imgs)| !imgs.is_empty());
        groups
    };
    view! {
        <div class="preview" data-testid="preview">
            {move || {
                groups()
                    .into_iter()
                    .map(|(tag, imgs)| {
                        let title = tag.clone().unwrap_or_else(|| "Unlabelled".to_owned());
                        let more = imgs.len().saturating_sub(SHOWN);
                        view! {
                            <section class="preview-group" data-testid="preview-group" data-name=tag.unwrap_or_default()>
                                <h3>
                                    {title} " " <span class="muted" data-testid="preview-count">{imgs.len()}</span>
                                </h3>
                                <ul class="grid small">
                                    {imgs
                                        .into_iter()
                                        .take(SHOWN)
                                        .map(|(id, path)| {
                                            view! {
                                                <li class="grid-item static">
                                                    <img src=api::thumbnail_url(id, 256) alt=path loading="lazy" decoding="async"/>
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                                {(more > 0).then(|| view! { <p class="muted small">{format!("and {more} more")}</p> })}
                            </section>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
}
