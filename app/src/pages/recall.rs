//! The recall workspace of a recommendation_recall instance (SPEC §8), shown on its
//! instance page: tables (upload with a client-side preview), behaviour log → CF job with
//! live progress, strategies and filters, the test console, and services.

use std::sync::atomic::Ordering;

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::names::StrategyName;
use shared::recall::{
    CfJob, CreateFilter, CreateStrategy, FilterKind, RecallItem, RecallRequest, RecallTable,
    StrategyKind, TableImport, TableInfo, check_id, parse_weighted_list,
};
use wasm_bindgen_futures::JsFuture;

use crate::api::{self, ApiError};
use crate::form::NameField;
use crate::pages::common::{ErrorNotice, chosen_file, confirm, error_alert};
use crate::pages::deploy::{DeployTarget, ServicesSection};
use crate::save::sentence;
use crate::timers::{alive_flag, sleep};
use crate::{format, use_session};

/// Bytes of a chosen file read for the preview (the upload itself sends the whole file).
const PREVIEW_BYTES: f64 = 64.0 * 1024.0;
/// Data rows shown in an upload preview.
const PREVIEW_ROWS: usize = 5;
/// How often a running CF job is polled.
const POLL_MS: i32 = 300;
/// Most items the test console asks for (SPEC §8: 1–10 in the form).
const CONSOLE_MAX: i64 = 10;
/// The server's limit on a strategy's recall count.
const MAX_STRATEGY_COUNT: i64 = 1000;

/// The sections, for the links at the top: element id and title.
const SECTIONS: [(&str, &str); 6] = [
    ("recall-tables", "Tables"),
    ("recall-log", "Behaviour log"),
    ("recall-strategies", "Strategies"),
    ("recall-filters", "Filters"),
    ("recall-console", "Test console"),
    ("recall-services", "Services"),
];

/// What the sections share: counters that say "something changed, fetch again".
#[derive(Clone, Copy)]
struct Versions {
    /// Table contents (uploads and CF jobs).
    tables: RwSignal<u32>,
    /// Anything a recall depends on: tables, strategies, filters.
    config: RwSignal<u32>,
    /// The user id last sent from the console (for the curl line of a new service).
    console_user: RwSignal<String>,
}

impl Versions {
    fn tables_changed(&self) {
        self.tables.update(|v| *v += 1);
        self.config.update(|v| *v += 1);
    }

    fn config_changed(&self) {
        self.config.update(|v| *v += 1);
    }
}

/// Everything of a recall instance, in the order of the work: data, rules, try, deploy.
#[component]
pub fn RecallWorkspace(instance: i64) -> impl IntoView {
    let versions = Versions {
        tables: RwSignal::new(0),
        config: RwSignal::new(0),
        console_user: RwSignal::new(String::new()),
    };
    let upload_table = RwSignal::new(RecallTable::UserItem);
    let upload_form = NodeRef::<html::Form>::new();
    view! {
        <div class="recall" data-testid="recall-workspace">
            <nav class="jump" aria-label="Sections">
                {SECTIONS
                    .into_iter()
                    .map(|(anchor, title)| {
                        view! {
                            <a
                                href=format!("#{anchor}")
                                on:click=move |ev| {
                                    // Scrolled here: the router would treat the link as a navigation.
                                    ev.prevent_default();
                                    if let Some(el) = document().get_element_by_id(anchor) {
                                        el.scroll_into_view();
                                    }
                                }
                            >
                                {title}
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
            <TablesSection instance=instance versions=versions upload_table=upload_table upload_form=upload_form/>
            <BehaviorLogSection instance=instance versions=versions/>
            <div class="rules">
                <StrategiesSection instance=instance versions=versions/>
                <FiltersSection instance=instance versions=versions/>
            </div>
            <ConsoleSection instance=instance versions=versions/>
            <Services instance=instance versions=versions/>
        </div>
    }
}

fn table_title(t: RecallTable) -> &'static str {
    match t {
        RecallTable::UserItem => "History (user → items)",
        RecallTable::ItemItem => "Similar items (item → items)",
        RecallTable::UserTopic => "User → topics",
        RecallTable::TopicItem => "Topic → items",
        RecallTable::Custom => "Custom (user → items)",
        RecallTable::FilterUserItem => "Filter: user → items",
        RecallTable::FilterItem => "Filter: items",
    }
}

fn table_format(t: RecallTable) -> String {
    let (key, value) = t.columns();
    if t.has_value() {
        format!("{key},{value} (id:weight,id:weight; weights optional)")
    } else {
        format!("{key} (one per line)")
    }
}

/// The first [`PREVIEW_BYTES`] of a file as text, and whether that is all of it.
async fn read_head(file: &web_sys::File) -> (String, bool) {
    let complete = file.size() <= PREVIEW_BYTES;
    let Ok(blob) = file.slice_with_f64_and_f64(0.0, PREVIEW_BYTES) else {
        return (String::new(), complete);
    };
    let text = JsFuture::from(blob.text())
        .await
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    (text, complete)
}

fn file_size(bytes: f64) -> String {
    if bytes < 1024.0 {
        format!("{bytes} B")
    } else if bytes < 1024.0 * 1024.0 {
        format!("{:.1} KB", bytes / 1024.0)
    } else {
        format!("{:.1} MB", bytes / (1024.0 * 1024.0))
    }
}

/// One previewed line of an upload: the key and value as the server will store them, or
/// why the server will refuse the line.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRow {
    pub line: usize,
    pub key: String,
    pub value: String,
    /// `line N, <field>: <message>`, as the server words it.
    pub error: Option<String>,
}

/// Parses the first data rows of an upload the way the server does (`key<sep>value`, the
/// separator a tab if the line has one, else the first comma or space; a header line is
/// skipped). `complete` says whether `text` is the whole file; if not, the last (maybe cut)
/// line is left out.
pub fn preview_rows(
    table: RecallTable,
    text: &str,
    complete: bool,
    limit: usize,
) -> Vec<PreviewRow> {
    let (key_col, value_col) = table.columns();
    let mut lines: Vec<&str> = text.lines().collect();
    if !complete {
        lines.pop();
    }
    let mut out = Vec::new();
    for (i, raw) in lines.into_iter().enumerate() {
        if out.len() >= limit {
            break;
        }
        let line = i + 1;
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() {
            continue;
        }
        let (key, value) = match raw.find('\t').or_else(|| raw.find([',', ' '])) {
            Some(p) => (raw[..p].trim(), raw[p + 1..].trim()),
            None => (raw.trim(), ""),
        };
        let key = key.trim_matches('"');
        let value = value.trim_matches('"');
        if line == 1 && key == key_col {
            continue;
        }
        let mut row = PreviewRow {
            line,
            key: key.to_owned(),
            value: value.to_owned(),
            error: None,
        };
        if let Err(m) = check_id(key) {
            row.error = Some(format!("line {line}, {key_col}: {m}"));
        } else if table.has_value() {
            match parse_weighted_list(value) {
                Err(m) => row.error = Some(format!("line {line}, {value_col}: {m}")),
                Ok(list) if list.is_empty() => {
                    row.error = Some(format!("line {line}, {value_col}: empty list"));
                }
                Ok(list) => {
                    row.value = list
                        .iter()
                        .map(|(id, w)| format!("{id}:{w}"))
                        .collect::<Vec<_>>()
                        .join(",");
                }
            }
        }
        out.push(row);
    }
    out
}

/// A chosen file and the head of it read for the preview.
#[derive(Clone)]
struct Chosen {
    file: web_sys::File,
    name: String,
    size: f64,
    head: String,
    complete: bool,
}

// ---- Tables ----

#[component]
fn TablesSection(
    instance: i64,
    versions: Versions,
    upload_table: RwSignal<RecallTable>,
    upload_form: NodeRef<html::Form>,
) -> impl IntoView {
    let session = use_session();
    let tables = LocalResource::new(move || {
        versions.tables.track();
        session.checked(api::list_tables(instance))
    });
    let pick = Callback::new(move |t: RecallTable| {
        upload_table.set(t);
        if let Some(form) = upload_form.get_untracked() {
            form.scroll_into_view();
        }
    });
    view! {
        <section class="section" id="recall-tables" data-testid="tables-section">
            <div class="section-head">
                <h2>"Tables"</h2>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading tables…"</p> }>
                {move || {
                    tables
                        .get()
                        .map(|result| match result {
                            Ok(list) => {
                                view! {
                                    <div class="table-cards" data-testid="table-cards">
                                        {list
                                            .into_iter()
                                            .map(|t| view! { <TableCard info=t pick=pick/> })
                                            .collect_view()}
                                    </div>
                                }
                                    .into_any()
                            }
                            Err(e) => error_alert(e.message, "tables-error").into_any(),
                        })
                }}
            </Transition>
            <UploadForm instance=instance versions=versions table=upload_table form_ref=upload_form/>
        </section>
    }
}

#[component]
fn TableCard(info: TableInfo, pick: Callback<RecallTable>) -> impl IntoView {
    let t = info.table;
    let (key_col, value_col) = t.columns();
    let empty = info.preview.is_empty();
    view! {
        <article class="table-card" data-testid="table-card" data-table=t.as_str()>
            <div class="table-card-head">
                <div>
                    <h3 class="path">{t.as_str()}</h3>
                    <span class="muted small">{table_title(t)}</span>
                </div>
                <span class="chip-count" data-testid="table-rows" data-rows=info.rows>
                    {format::count(info.rows, "row", "rows")}
                </span>
            </div>
            {if empty {
                view! { <p class="muted small table-empty">"Empty"</p> }.into_any()
            } else {
                view! {
                    <table class="table mini">
                        <thead>
                            <tr>
                                <th>{key_col}</th>
                                {t.has_value().then(|| view! { <th>{value_col}</th> })}
                            </tr>
                        </thead>
                        <tbody>
                            {info
                                .preview
                                .into_iter()
                                .map(|r| {
                                    view! {
                                        <tr data-testid="table-preview-row">
                                            <td class="path">{r.key}</td>
                                            {t.has_value().then(|| view! { <td class="path">{r.value}</td> })}
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
            <button
                type="button"
                class="button subtle small"
                data-testid="table-upload"
                on:click=move |_| pick.run(t)
            >
                "Upload…"
            </button>
        </article>
    }
}

#[component]
fn UploadForm(
    instance: i64,
    versions: Versions,
    table: RwSignal<RecallTable>,
    form_ref: NodeRef<html::Form>,
) -> impl IntoView {
    let session = use_session();
    let append = RwSignal::new(false);
    let chosen = RwSignal::new_local(None::<Chosen>);
    let pending = RwSignal::new(false);
    let result = RwSignal::new(None::<TableImport>);
    let error = RwSignal::new(None::<ApiError>);
    let input = NodeRef::<html::Input>::new();
    // Bumped per chosen file, so a slow read of an older file does not win.
    let picks = StoredValue::new(0u32);

    let preview = Memo::new(move |_| {
        let t = table.get();
        chosen.with(|c| {
            c.as_ref()
                .map(|c| preview_rows(t, &c.head, c.complete, PREVIEW_ROWS))
        })
    });
    let first_bad = Memo::new(move |_| {
        preview.with(|p| {
            p.as_ref()
                .and_then(|rows| rows.iter().find_map(|r| r.error.clone()))
        })
    });

    let on_file = move |ev: leptos::ev::Event| {
        result.set(None);
        error.set(None);
        picks.update_value(|n| *n += 1);
        let pick = picks.get_value();
        let Some(file) = chosen_file(&ev) else {
            chosen.set(None);
            return;
        };
        spawn_local(async move {
            let (head, complete) = read_head(&file).await;
            if picks.try_get_value() != Some(pick) {
                return;
            }
            chosen.try_set(Some(Chosen {
                name: file.name(),
                size: file.size(),
                file,
                head,
                complete,
            }));
        });
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() || first_bad.get_untracked().is_some() {
            return;
        }
        let Some(c) = chosen.get_untracked() else {
            error.set(Some(ApiError::new(0, "no_file", "Choose a file first.")));
            return;
        };
        let t = table.get_untracked();
        let mode_append = append.get_untracked();
        pending.set(true);
        error.set(None);
        result.set(None);
        spawn_local(async move {
            let r = api::import_table(instance, t, mode_append, &c.file).await;
            pending.try_set(false);
            match r {
                Ok(done) => {
                    result.try_set(Some(done));
                    chosen.try_set(None);
                    if let Some(el) = input.get_untracked() {
                        el.set_value("");
                    }
                    versions.tables_changed();
                }
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(e));
                }
            }
        });
    };

    view! {
        <form
            class="panel upload-form"
            node_ref=form_ref
            on:submit=submit
            novalidate=true
            data-testid="upload-form"
        >
            <h3>"Upload a table"</h3>
            <p class="muted small">
                "CSV or TSV, one row per key: "
                <code data-testid="upload-format">{move || table_format(table.get())}</code>
            </p>
            <div class="upload-grid">
                <label class="field">
                    <span>"Table"</span>
                    <select
                        data-testid="upload-table"
                        on:change=move |ev| {
                            if let Some(t) = RecallTable::parse(&event_target_value(&ev)) {
                                table.set(t);
                                result.set(None);
                                error.set(None);
                            }
                        }
                    >
                        {RecallTable::ALL
                            .into_iter()
                            .map(|t| {
                                view! {
                                    <option value=t.as_str() selected=move || table.get() == t>
                                        {t.as_str()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"Mode"</span>
                    <select
                        data-testid="upload-mode"
                        on:change=move |ev| append.set(event_target_value(&ev) == "append")
                    >
                        <option value="replace" selected=move || !append.get()>
                            "Replace the table"
                        </option>
                        <option value="append" selected=move || append.get()>
                            "Append (same key replaces)"
                        </option>
                    </select>
                </label>
                <label class="field">
                    <span>"File"</span>
                    <input
                        type="file"
                        accept=".csv,.tsv,.txt,text/csv,text/tab-separated-values,text/plain"
                        data-testid="upload-file"
                        node_ref=input
                        on:change=on_file
                    />
                </label>
            </div>
            {move || {
                chosen
                    .with(|c| c.as_ref().map(|c| (c.name.clone(), c.size)))
                    .map(|(name, size)| {
                        let rows = preview.get().unwrap_or_default();
                        view! {
                            <div class="upload-preview" data-testid="upload-preview">
                                <p class="small muted">
                                    <strong class="path">{name}</strong>
                                    {format!(" · {} · first rows as they will be stored:", file_size(size))}
                                </p>
                                {if rows.is_empty() {
                                    view! { <p class="muted small" data-testid="upload-preview-empty">"No data rows found."</p> }.into_any()
                                } else {
                                    view! {
                                        <table class="table mini">
                                            <thead>
                                                <tr>
                                                    <th>"line"</th>
                                                    <th>{move || table.get().columns().0}</th>
                                                    <th>{move || table.get().columns().1}</th>
                                                </tr>
                                            </thead>
                                            <tbody>
                                                {rows
                                                    .into_iter()
                                                    .map(|r| {
                                                        let bad = r.error.is_some();
                                                        let key = r.key.clone();
                                                        view! {
                                                            <tr
                                                                data-testid="upload-preview-row"
                                                                class:bad=bad
                                                                data-key=key
                                                            >
                                                                <td class="muted">{r.line}</td>
                                                                <td class="path">{r.key}</td>
                                                                <td class="path">
                                                                    {r.value}
                                                                    {r.error.map(|e| view! { <span class="row-error">{e}</span> })}
                                                                </td>
                                                            </tr>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </tbody>
                                        </table>
                                    }
                                        .into_any()
                                }}
                            </div>
                        }
                    })
            }}
            <Show when=move || first_bad.get().is_some()>
                <p class="alert error" role="alert" data-testid="upload-preview-error">
                    {move || format!("The server would refuse this file: {}", first_bad.get().unwrap_or_default())}
                </p>
            </Show>
            <Show when=move || error.get().is_some()>
                <p class="alert error" role="alert" data-testid="upload-error">
                    {move || error.get().map(|e| sentence(&e.message)).unwrap_or_default()}
                </p>
            </Show>
            <Show when=move || result.get().is_some()>
                <p class="alert ok" role="status" data-testid="upload-result">
                    {move || {
                        result
                            .get()
                            .map(|r| {
                                format!(
                                    "Imported {} ({}); {} now has {}.",
                                    format::count(r.imported, "row", "rows"),
                                    r.mode,
                                    r.table.as_str(),
                                    format::count(r.rows, "row", "rows"),
                                )
                            })
                            .unwrap_or_default()
                    }}
                </p>
            </Show>
            <div class="actions">
                <button
                    type="submit"
                    class="button primary"
                    data-testid="upload-submit"
                    disabled=move || {
                        pending.get() || chosen.with(Option::is_none) || first_bad.get().is_some()
                    }
                >
                    {move || {
                        if pending.get() {
                            "Uploading…".to_owned()
                        } else {
                            format!("Upload to {}", table.get().as_str())
                        }
                    }}
                </button>
            </div>
        </form>
    }
}

// ---- Behaviour log ----

#[component]
fn BehaviorLogSection(instance: i64, versions: Versions) -> impl IntoView {
    let session = use_session();
    let file = RwSignal::new_local(None::<web_sys::File>);
    let top_n = RwSignal::new("50".to_owned());
    let job = RwSignal::new(None::<CfJob>);
    let running = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let alive = alive_flag();

    let top_n_error = Memo::new(move |_| {
        top_n.with(|s| match s.trim().parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => None,
            _ => Some("top N is 1 to 500 similar items per item".to_owned()),
        })
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if running.get_untracked() || top_n_error.get_untracked().is_some() {
            return;
        }
        let Some(f) = file.get_untracked() else {
            error.set(Some(ApiError::new(
                0,
                "no_file",
                "Choose a log file first.",
            )));
            return;
        };
        let n = top_n.get_untracked().trim().parse().unwrap_or(50);
        running.set(true);
        error.set(None);
        job.set(None);
        let alive = alive.clone();
        spawn_local(async move {
            let mut current = match api::start_behavior_log(instance, n, &f).await {
                Ok(j) => j,
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(e));
                    running.try_set(false);
                    return;
                }
            };
            job.try_set(Some(current.clone()));
            while current.state == "running" {
                sleep(POLL_MS).await;
                if !alive.load(Ordering::Relaxed) {
                    return;
                }
                match api::get_cf_job(instance, &current.id).await {
                    Ok(next) => {
                        current = next;
                        job.try_set(Some(current.clone()));
                    }
                    Err(e) if e.is_transient() => {}
                    Err(e) => {
                        session.check(&e);
                        error.try_set(Some(e));
                        break;
                    }
                }
            }
            running.try_set(false);
            if current.state == "succeeded" {
                versions.tables_changed();
            }
        });
    };

    view! {
        <section class="section" id="recall-log" data-testid="log-section">
            <div class="section-head">
                <h2>"Behaviour log → collaborative filtering"</h2>
            </div>
            <form class="panel" on:submit=submit novalidate=true data-testid="log-form">
                <p class="muted small">
                    "A log of "<code>"user_id,item_id,active_type,active_date"</code>
                    " (0 click, 1 buy, 2 favourite) or MovieLens "
                    <code>"userId,movieId,rating,timestamp"</code>
                    ". The server computes user_item (histories) and item_item (top N similar items per item) from it, replacing both tables."
                </p>
                <div class="upload-grid">
                    <label class="field">
                        <span>"Log file"</span>
                        <input
                            type="file"
                            accept=".csv,.tsv,.txt,.log,text/csv,text/plain"
                            data-testid="log-file"
                            on:change=move |ev| {
                                file.set(chosen_file(&ev));
                                error.set(None);
                            }
                        />
                    </label>
                    <label class="field">
                        <span>"Similar items per item (top N)"</span>
                        <input
                            type="number"
                            min="1"
                            max="500"
                            data-testid="log-top-n"
                            aria-invalid=move || if top_n_error.get().is_some() { "true" } else { "false" }
                            prop:value=move || top_n.get()
                            on:input=move |ev| top_n.set(event_target_value(&ev))
                        />
                        <span class="field-message error" data-testid="log-top-n-error">
                            {move || top_n_error.get().unwrap_or_default()}
                        </span>
                    </label>
                </div>
                <Show when=move || error.get().is_some()>
                    <p class="alert error" role="alert" data-testid="log-error">
                        {move || error.get().map(|e| sentence(&e.message)).unwrap_or_default()}
                    </p>
                </Show>
                {move || job.get().map(|j| view! { <JobProgress job=j/> })}
                <div class="actions">
                    <button
                        type="submit"
                        class="button primary"
                        data-testid="log-submit"
                        disabled=move || running.get() || file.with(Option::is_none)
                    >
                        {move || if running.get() { "Building…" } else { "Build from log" }}
                    </button>
                </div>
            </form>
        </section>
    }
}

#[component]
fn JobProgress(job: CfJob) -> impl IntoView {
    let percent = (job.progress.clamp(0.0, 1.0) * 100.0).round();
    view! {
        <div class="job" data-testid="log-job" data-state=job.state.clone()>
            <div class="job-line">
                <progress data-testid="log-progress" max="1" prop:value=job.progress></progress>
                <span class="job-percent" data-testid="log-percent">{format!("{percent}%")}</span>
            </div>
            <p class="small muted" data-testid="log-stage">
                {match job.state.as_str() {
                    "succeeded" => "Done.".to_owned(),
                    "failed" => format!("Failed: {}", job.error.clone().unwrap_or_default()),
                    _ => sentence(&job.stage),
                }}
            </p>
            {job
                .stats
                .map(|s| {
                    view! {
                        <dl class="facts stats" data-testid="log-stats">
                            <div>
                                <dt>"Interactions"</dt>
                                <dd data-testid="stat-interactions">{s.interactions}</dd>
                            </div>
                            <div>
                                <dt>"Users"</dt>
                                <dd data-testid="stat-users">{s.users}</dd>
                            </div>
                            <div>
                                <dt>"Items"</dt>
                                <dd data-testid="stat-items">{s.items}</dd>
                            </div>
                            <div>
                                <dt>"item_item rows"</dt>
                                <dd data-testid="stat-item-item">{s.item_item_rows}</dd>
                            </div>
                            <div>
                                <dt>"Time"</dt>
                                <dd>{format!("{} ms", s.elapsed_ms)}</dd>
                            </div>
                        </dl>
                    }
                })}
        </div>
    }
}

// ---- Strategies and filters ----

fn strategy_kind_str(k: StrategyKind) -> &'static str {
    match k {
        StrategyKind::CollaborativeFiltering => "collaborative_filtering",
        StrategyKind::Semantic => "semantic",
        StrategyKind::Custom => "custom",
    }
}

fn strategy_kind_title(k: StrategyKind) -> &'static str {
    match k {
        StrategyKind::CollaborativeFiltering => "Collaborative filtering",
        StrategyKind::Semantic => "Semantic",
        StrategyKind::Custom => "Custom",
    }
}

fn strategy_kind_tables(k: StrategyKind) -> &'static str {
    match k {
        StrategyKind::CollaborativeFiltering => "user_item + item_item",
        StrategyKind::Semantic => "user_topic + topic_item",
        StrategyKind::Custom => "custom",
    }
}

const STRATEGY_KINDS: [StrategyKind; 3] = [
    StrategyKind::CollaborativeFiltering,
    StrategyKind::Semantic,
    StrategyKind::Custom,
];

fn filter_kind_str(k: FilterKind) -> &'static str {
    match k {
        FilterKind::UserItem => "user_item",
        FilterKind::Item => "item",
    }
}

fn filter_kind_title(k: FilterKind) -> &'static str {
    match k {
        FilterKind::UserItem => "Per user (filter_user_item)",
        FilterKind::Item => "Everywhere (filter_item)",
    }
}

/// The strategy/filter name rule, worded as the server words it.
fn rule_name_error(name: &str, what: &str) -> Option<String> {
    StrategyName::parse(name)
        .err()
        .map(|e| e.to_string().replace("strategy name", what))
}

#[component]
fn StrategiesSection(instance: i64, versions: Versions) -> impl IntoView {
    let session = use_session();
    let version = RwSignal::new(0u32);
    let list = LocalResource::new(move || {
        version.track();
        session.checked(api::list_strategies(instance))
    });
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new(StrategyKind::CollaborativeFiltering);
    let count = RwSignal::new("50".to_owned());
    let touched = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let list_error = RwSignal::new(None::<String>);

    let name_rule = Memo::new(move |_| name.with(|n| rule_name_error(n, "strategy name")));
    let count_rule = Memo::new(move |_| {
        count.with(|c| match c.trim().parse::<i64>() {
            Ok(n) if (1..=MAX_STRATEGY_COUNT).contains(&n) => None,
            _ => Some(format!("count is 1 to {MAX_STRATEGY_COUNT}")),
        })
    });
    let count_error = move || {
        error
            .with(|e| {
                e.as_ref()
                    .filter(|e| e.is_for_field("count"))
                    .map(|e| e.message.clone())
            })
            .or_else(|| count_rule.get())
    };
    let other_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| !e.is_for_field("name") && !e.is_for_field("count"))
                .map(|e| sentence(&e.message))
        })
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if pending.get_untracked()
            || name_rule.get_untracked().is_some()
            || count_rule.get_untracked().is_some()
        {
            return;
        }
        let body = CreateStrategy {
            name: name.get_untracked(),
            kind: kind.get_untracked(),
            count: count.get_untracked().trim().parse().unwrap_or(50),
        };
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            let r = api::create_strategy(instance, &body).await;
            pending.try_set(false);
            match r {
                Ok(_) => {
                    name.try_set(String::new());
                    touched.try_set(false);
                    version.update(|v| *v += 1);
                    versions.config_changed();
                }
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(e));
                }
            }
        });
    };

    let delete = move |strategy: String| {
        if !confirm(&format!("Delete strategy \u{201c}{strategy}\u{201d}?")) {
            return;
        }
        list_error.set(None);
        spawn_local(async move {
            match api::delete_strategy(instance, &strategy).await {
                Ok(()) => {
                    version.try_update(|v| *v += 1);
                    versions.config_changed();
                }
                Err(e) => {
                    session.check(&e);
                    list_error.try_set(Some(sentence(&e.message)));
                }
            }
        });
    };

    view! {
        <section class="section" id="recall-strategies" data-testid="strategies-section">
            <div class="section-head">
                <h2>"Strategies"</h2>
            </div>
            <div class="panel">
                <p class="muted small">
                    "Merged in this order, without duplicates; each item records the strategy that found it."
                </p>
                <ErrorNotice error=list_error testid="strategy-list-error"/>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || {
                        list.get()
                            .map(|r| match r {
                                Ok(v) if v.is_empty() => {
                                    view! {
                                        <p class="muted empty-note" data-testid="strategy-empty">
                                            "No strategies yet: every user gets popular items."
                                        </p>
                                    }
                                        .into_any()
                                }
                                Ok(v) => {
                                    view! {
                                        <ol class="rule-list" data-testid="strategy-list">
                                            {v
                                                .into_iter()
                                                .enumerate()
                                                .map(|(i, s)| {
                                                    let n = s.name.clone();
                                                    view! {
                                                        <li class="rule-row" data-testid="strategy-row" data-name=s.name.clone()>
                                                            <span class="rule-pos">{i + 1}</span>
                                                            <div class="rule-main">
                                                                <strong class="path" data-testid="strategy-name-text">{s.name.clone()}</strong>
                                                                <span class="muted small">
                                                                    <span data-testid="strategy-type" data-type=strategy_kind_str(s.kind)>
                                                                        {strategy_kind_title(s.kind)}
                                                                    </span>
                                                                    {format!(" · {}", strategy_kind_tables(s.kind))}
                                                                </span>
                                                            </div>
                                                            <span class="chip-count" data-testid="strategy-count" title="Items recalled at most">
                                                                {format!("top {}", s.count)}
                                                            </span>
                                                            <button
                                                                type="button"
                                                                class="icon-button danger"
                                                                data-testid="strategy-delete"
                                                                title="Delete"
                                                                aria-label=format!("Delete strategy {}", s.name)
                                                                on:click=move |_| delete(n.clone())
                                                            >
                                                                "✕"
                                                            </button>
                                                        </li>
                                                    }
                                                })
                                                .collect_view()}
                                        </ol>
                                    }
                                        .into_any()
                                }
                                Err(e) => view! { <p class="alert error" role="alert">{e.message}</p> }.into_any(),
                            })
                    }}
                </Transition>
                <form class="add-form" on:submit=submit novalidate=true data-testid="strategy-form">
                    <NameField
                        label="Name"
                        placeholder="e.g. cf"
                        value=name
                        touched=touched
                        rule=name_rule
                        error=error
                        testid="strategy-name"
                        error_testid="strategy-name-error"
                    />
                    <label class="field">
                        <span>"Type"</span>
                        <select
                            data-testid="strategy-type-select"
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                if let Some(k) = STRATEGY_KINDS.into_iter().find(|k| strategy_kind_str(*k) == v) {
                                    kind.set(k);
                                }
                            }
                        >
                            {STRATEGY_KINDS
                                .into_iter()
                                .map(|k| {
                                    view! {
                                        <option
                                            value=strategy_kind_str(k)
                                            title=strategy_kind_tables(k)
                                            selected=move || kind.get() == k
                                        >
                                            {strategy_kind_title(k)}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                    </label>
                    <label class="field count-field">
                        <span>"Count"</span>
                        <input
                            type="number"
                            min="1"
                            max=MAX_STRATEGY_COUNT
                            data-testid="strategy-count-input"
                            aria-invalid=move || if count_error().is_some() { "true" } else { "false" }
                            prop:value=move || count.get()
                            on:input=move |ev| {
                                count.set(event_target_value(&ev));
                                error.set(None);
                            }
                        />
                        <span class="field-message error" data-testid="strategy-count-error">
                            {move || count_error().unwrap_or_default()}
                        </span>
                    </label>
                    <div class="add-submit">
                        <button type="submit" class="button primary" data-testid="strategy-submit" disabled=move || pending.get()>
                            "Add"
                        </button>
                    </div>
                </form>
                <Show when=move || other_error().is_some()>
                    <p class="alert error" role="alert" data-testid="strategy-error">
                        {move || other_error().unwrap_or_default()}
                    </p>
                </Show>
            </div>
        </section>
    }
}

#[component]
fn FiltersSection(instance: i64, versions: Versions) -> impl IntoView {
    let session = use_session();
    let version = RwSignal::new(0u32);
    let list = LocalResource::new(move || {
        version.track();
        session.checked(api::list_filters(instance))
    });
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new(FilterKind::UserItem);
    let touched = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let list_error = RwSignal::new(None::<String>);

    let name_rule = Memo::new(move |_| name.with(|n| rule_name_error(n, "filter name")));
    let other_error = move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| !e.is_for_field("name"))
                .map(|e| sentence(&e.message))
        })
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if pending.get_untracked() || name_rule.get_untracked().is_some() {
            return;
        }
        let body = CreateFilter {
            name: name.get_untracked(),
            kind: kind.get_untracked(),
        };
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            let r = api::create_filter(instance, &body).await;
            pending.try_set(false);
            match r {
                Ok(_) => {
                    name.try_set(String::new());
                    touched.try_set(false);
                    version.update(|v| *v += 1);
                    versions.config_changed();
                }
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(e));
                }
            }
        });
    };

    let delete = move |filter: String| {
        if !confirm(&format!("Delete filter \u{201c}{filter}\u{201d}?")) {
            return;
        }
        list_error.set(None);
        spawn_local(async move {
            match api::delete_filter(instance, &filter).await {
                Ok(()) => {
                    version.try_update(|v| *v += 1);
                    versions.config_changed();
                }
                Err(e) => {
                    session.check(&e);
                    list_error.try_set(Some(sentence(&e.message)));
                }
            }
        });
    };

    view! {
        <section class="section" id="recall-filters" data-testid="filters-section">
            <div class="section-head">
                <h2>"Filters"</h2>
            </div>
            <div class="panel">
                <p class="muted small">
                    "Applied after merging. Items in the user's history are never re-recommended."
                </p>
                <ErrorNotice error=list_error testid="filter-list-error"/>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || {
                        list.get()
                            .map(|r| match r {
                                Ok(v) if v.is_empty() => {
                                    view! {
                                        <p class="muted empty-note" data-testid="filter-empty">"No filters."</p>
                                    }
                                        .into_any()
                                }
                                Ok(v) => {
                                    view! {
                                        <ul class="rule-list" data-testid="filter-list">
                                            {v
                                                .into_iter()
                                                .map(|f| {
                                                    let n = f.name.clone();
                                                    view! {
                                                        <li class="rule-row" data-testid="filter-row" data-name=f.name.clone()>
                                                            <div class="rule-main">
                                                                <strong class="path">{f.name.clone()}</strong>
                                                                <span class="muted small" data-testid="filter-type" data-type=filter_kind_str(f.kind)>
                                                                    {filter_kind_title(f.kind)}
                                                                </span>
                                                            </div>
                                                            <button
                                                                type="button"
                                                                class="icon-button danger"
                                                                data-testid="filter-delete"
                                                                title="Delete"
                                                                aria-label=format!("Delete filter {}", f.name)
                                                                on:click=move |_| delete(n.clone())
                                                            >
                                                                "✕"
                                                            </button>
                                                        </li>
                                                    }
                                                })
                                                .collect_view()}
                                        </ul>
                                    }
                                        .into_any()
                                }
                                Err(e) => view! { <p class="alert error" role="alert">{e.message}</p> }.into_any(),
                            })
                    }}
                </Transition>
                <form class="add-form" on:submit=submit novalidate=true data-testid="filter-form">
                    <NameField
                        label="Name"
                        placeholder="e.g. seen"
                        value=name
                        touched=touched
                        rule=name_rule
                        error=error
                        testid="filter-name"
                        error_testid="filter-name-error"
                    />
                    <label class="field">
                        <span>"Type"</span>
                        <select
                            data-testid="filter-type-select"
                            on:change=move |ev| {
                                kind.set(if event_target_value(&ev) == "item" { FilterKind::Item } else { FilterKind::UserItem });
                            }
                        >
                            {[FilterKind::UserItem, FilterKind::Item]
                                .into_iter()
                                .map(|k| {
                                    view! {
                                        <option value=filter_kind_str(k) selected=move || kind.get() == k>
                                            {filter_kind_title(k)}
                                        </option>
                                    }
                                })
                                .collect_view()}
                        </select>
                    </label>
                    <div class="add-submit">
                        <button type="submit" class="button primary" data-testid="filter-submit" disabled=move || pending.get()>
                            "Add"
                        </button>
                    </div>
                </form>
                <Show when=move || other_error().is_some()>
                    <p class="alert error" role="alert" data-testid="filter-error">
                        {move || other_error().unwrap_or_default()}
                    </p>
                </Show>
            </div>
        </section>
    }
}

// ---- Test console ----

#[component]
fn ConsoleSection(instance: i64, versions: Versions) -> impl IntoView {
    let session = use_session();
    let user = RwSignal::new(String::new());
    let size = RwSignal::new("5".to_owned());
    let pending = RwSignal::new(false);
    let answer = RwSignal::new(None::<(Vec<RecallItem>, String)>);
    let error = RwSignal::new(None::<String>);
    let touched = RwSignal::new(false);
    // The last request sent, re-sent when the configuration changes.
    let last = RwSignal::new(None::<RecallRequest>);
    let seq = StoredValue::new(0u32);

    let user_rule = Memo::new(move |_| {
        user.with(|u| {
            let u = u.trim();
            if u.is_empty() {
                Some("enter a user id".to_owned())
            } else {
                check_id(u).err()
            }
        })
    });
    let size_rule = Memo::new(move |_| {
        size.with(|s| match s.trim().parse::<i64>() {
            Ok(n) if (1..=CONSOLE_MAX).contains(&n) => None,
            _ => Some(format!("count is 1 to {CONSOLE_MAX}")),
        })
    });

    let run = move |req: RecallRequest| {
        seq.update_value(|n| *n += 1);
        let mine = seq.get_value();
        pending.set(true);
        error.set(None);
        versions.console_user.set(req.user_id.clone());
        last.set(Some(req.clone()));
        spawn_local(async move {
            let r = api::recall_test(instance, &req).await;
            if seq.try_get_value() != Some(mine) {
                return;
            }
            pending.try_set(false);
            match r {
                Ok((resp, pretty)) => {
                    answer.try_set(Some((resp.items, pretty)));
                }
                Err(e) => {
                    session.check(&e);
                    answer.try_set(None);
                    error.try_set(Some(sentence(&e.message)));
                }
            }
        });
    };

    // The configuration changed (tables, strategies, filters): ask again.
    Effect::new(move |prev: Option<()>| {
        versions.config.track();
        if prev.is_some()
            && let Some(req) = last.get_untracked()
        {
            run(req);
        }
    });

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if user_rule.get_untracked().is_some() || size_rule.get_untracked().is_some() {
            return;
        }
        run(RecallRequest {
            user_id: user.get_untracked().trim().to_owned(),
            size: size.get_untracked().trim().parse().ok(),
        });
    };

    view! {
        <section class="section" id="recall-console" data-testid="console-section">
            <div class="section-head">
                <h2>"Test console"</h2>
            </div>
            <div class="panel">
                <form class="add-form console-form" on:submit=submit novalidate=true data-testid="console-form">
                    <label class="field">
                        <span>"User id"</span>
                        <input
                            type="text"
                            autocomplete="off"
                            spellcheck="false"
                            placeholder="e.g. u1"
                            data-testid="console-user"
                            aria-invalid=move || if touched.get() && user_rule.get().is_some() { "true" } else { "false" }
                            prop:value=move || user.get()
                            on:input=move |ev| user.set(event_target_value(&ev))
                        />
                        <span class="field-message error" data-testid="console-user-error">
                            {move || if touched.get() { user_rule.get().unwrap_or_default() } else { String::new() }}
                        </span>
                    </label>
                    <label class="field count-field">
                        <span>"Count"</span>
                        <input
                            type="number"
                            min="1"
                            max=CONSOLE_MAX
                            data-testid="console-size"
                            aria-invalid=move || if size_rule.get().is_some() { "true" } else { "false" }
                            prop:value=move || size.get()
                            on:input=move |ev| size.set(event_target_value(&ev))
                        />
                        <span class="field-message error" data-testid="console-size-error">
                            {move || size_rule.get().unwrap_or_default()}
                        </span>
                    </label>
                    <div class="add-submit">
                        <button type="submit" class="button primary" data-testid="console-send" disabled=move || pending.get()>
                            "Send"
                        </button>
                    </div>
                </form>
                <ErrorNotice error=error testid="console-error"/>
                {move || {
                    answer
                        .get()
                        .map(|(items, pretty)| {
                            let n = items.len();
                            view! {
                                <div class="console-out" data-testid="console-result" data-count=n>
                                    <div>
                                        <h3 class="panel-title">{format::count(n as i64, "item", "items")}</h3>
                                        {if items.is_empty() {
                                            view! { <p class="muted small" data-testid="console-empty">"Nothing to recommend."</p> }.into_any()
                                        } else {
                                            view! {
                                                <ol class="console-items" data-testid="console-items">
                                                    {items
                                                        .into_iter()
                                                        .map(|i| {
                                                            let popular = i.retrieve_id == "popular";
                                                            let (item, retrieve) = (i.item_id.clone(), i.retrieve_id.clone());
                                                            view! {
                                                                <li
                                                                    data-testid="console-item"
                                                                    data-item=item
                                                                    data-retrieve=retrieve
                                                                >
                                                                    <span class="path">{i.item_id}</span>
                                                                    <span class="badge" class:popular=popular>{i.retrieve_id}</span>
                                                                </li>
                                                            }
                                                        })
                                                        .collect_view()}
                                                </ol>
                                            }
                                                .into_any()
                                        }}
                                    </div>
                                    <pre class="json" data-testid="console-json">{pretty}</pre>
                                </div>
                            }
                        })
                }}
            </div>
        </section>
    }
}

// ---- Services ----

#[component]
fn Services(instance: i64, versions: Versions) -> impl IntoView {
    let session = use_session();
    let list = LocalResource::new(move || session.checked(api::list_services(instance)));
    view! {
        <ServicesSection
            target=DeployTarget::Recall(instance)
            list=list
            testid="services-section"
            anchor="recall-services"
            empty="Not deployed."
            placeholder="e.g. home"
            user=Signal::from(versions.console_user)
        >
            "A service answers "<code>"GET /api/recall/<name>?user_id=&size="</code>
            " with the strategies and filters above, for callers holding its token."
        </ServicesSection>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_parses_like_the_server_and_flags_bad_lines() {
        let csv = "user_id,item_ids\nu1,\"h1,h2\"\n\nu2\tx:0.5 y\n";
        let rows = preview_rows(RecallTable::UserItem, csv, true, 5);
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.line, r.key.as_str(), r.value.as_str(), r.error.is_some()))
            .collect();
        assert_eq!(
            got,
            [(2, "u1", "h1:1,h2:1", false), (4, "u2", "x:0.5,y:1", false)]
        );

        let rows = preview_rows(RecallTable::ItemItem, "h1,a:1\nh3,c:high\nu3\n", true, 5);
        assert_eq!(
            rows[1].error.as_deref(),
            Some("line 2, similar_item_ids: weight \"high\" of \"c\" is not a number")
        );
        assert_eq!(
            rows[2].error.as_deref(),
            Some("line 3, similar_item_ids: empty list")
        );
        let rows = preview_rows(RecallTable::FilterItem, "item_id\nz1\n", true, 5);
        assert_eq!((rows.len(), rows[0].error.is_none()), (1, true));
    }

    #[test]
    fn preview_leaves_out_a_cut_last_line_and_stops_at_the_limit() {
        let rows = preview_rows(RecallTable::Custom, "u1,a\nu2,b\nu3,c:0.", false, 5);
        assert_eq!(rows.len(), 2);
        let many: String = (0..20).map(|i| format!("u{i},a\n")).collect();
        assert_eq!(preview_rows(RecallTable::Custom, &many, true, 5).len(), 5);
    }
}
