//! One training task (`/tasks/:id`): its facts, a Stop button, and live updates from the
//! server-sent event stream (`/api/tasks/{id}/events`): loss and accuracy curves, the
//! progress bar with an estimate of the time left, and the log. The stream replays the
//! task's events from the start, so a page opened mid-run (or after) shows everything.

use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use shared::InstanceType;
use shared::api::Instance;
use shared::train::{Progress, Task, TaskEvent, TaskEventBody, TaskStatus};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

use crate::api;
use crate::charts::{Marker, Series, TimeChart, YAxis};
use crate::pages::common::{Breadcrumb, ErrorNotice, load_by_id, page_by_id, with_instance};
use crate::pages::training::{preset_title, progress_bar, status_badge};
use crate::save::sentence;
use crate::{Session, format, use_session};

/// Log lines kept in the page (the full log stays downloadable).
const MAX_LOG_LINES: usize = 5000;
const TRAIN_COLOR: &str = "#2f6fdf";
const VAL_COLOR: &str = "#d9730d";

#[component]
pub fn TaskPage() -> impl IntoView {
    let data = load_by_id("task", |id| {
        with_instance(api::get_task(id), |t| t.instance_id)
    });
    page_by_id("task-page", "task-error", data, |(task, instance)| {
        view! { <TaskView task=task instance=instance/> }
    })
}

/// The state of the event stream, shown beside the title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Connecting,
    Open,
    /// The server refused or the browser gave up; the user can reconnect.
    Closed,
    /// The task finished and the stream ended.
    Done,
}

impl Link {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Done => "done",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LogLine {
    at: String,
    line: String,
}

/// Everything the stream updates (all `Copy`, so handlers capture it freely).
#[derive(Clone, Copy)]
struct Live {
    task: RwSignal<Task>,
    points: RwSignal<Vec<Progress>>,
    logs: RwSignal<Vec<LogLine>>,
    link: RwSignal<Link>,
    /// The last event applied; replays after a reconnect skip what is already here.
    last_seq: RwSignal<i64>,
    /// `Date.now()` when the latest progress event arrived (the ETA counts down from it).
    progress_at: RwSignal<f64>,
    /// `points` holds only the task row's latest progress, shown until the replay starts.
    seeded: RwSignal<bool>,
    session: Session,
}

impl Live {
    /// Applies one event; returns whether the task has finished.
    fn apply(self, event: TaskEvent) -> bool {
        if event.seq <= self.last_seq.get_untracked() {
            return false;
        }
        self.last_seq.set(event.seq);
        if self.seeded.get_untracked() {
            self.seeded.set(false);
            self.points.set(Vec::new());
        }
        match event.body {
            TaskEventBody::Log { line } => {
                self.logs.update(|l| {
                    l.push(LogLine { at: event.at, line });
                    if l.len() > MAX_LOG_LINES {
                        l.drain(..l.len() - MAX_LOG_LINES);
                    }
                });
                false
            }
            TaskEventBody::Progress(p) => {
                self.task.update(|t| {
                    t.progress = p.progress;
                    t.last_progress = Some(p.clone());
                });
                self.progress_at.set(js_sys::Date::now());
                self.points.update(|v| v.push(p));
                false
            }
            TaskEventBody::Status {
                status,
                error,
                model_id,
            } => {
                self.task.update(|t| {
                    t.status = status;
                    if error.is_some() {
                        t.error = error;
                    }
                    if model_id.is_some() {
                        t.model_id = model_id;
                    }
                });
                status.is_finished()
            }
        }
    }

    /// Fetches the task again (start and end times, worker, device come with status changes).
    fn refresh(self) {
        let session = self.session;
        let id = self.task.with_untracked(|t| t.id);
        spawn_local(async move {
            match api::get_task(id).await {
                Ok(t) => {
                    self.task.try_update(|old| {
                        // Progress from the stream may be newer than the row.
                        let last = old.last_progress.take();
                        let progress = old.progress;
                        *old = t;
                        if old.last_progress.is_none() {
                            old.last_progress = last;
                        }
                        if !old.status.is_finished() {
                            old.progress = old.progress.max(progress);
                        }
                    });
                }
                Err(e) => session.check(&e),
            }
        });
    }
}

/// An open `EventSource` and its handlers; dropping it closes the connection.
struct Stream {
    source: web_sys::EventSource,
    _on_event: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Opens the task's event stream. The browser reconnects by itself after a network error
/// (sending `Last-Event-ID`); a finished task's stream is closed here, since the server
/// ends it and the browser would otherwise reconnect.
fn open_stream(id: i64, live: Live) -> Option<Stream> {
    let source = web_sys::EventSource::new(&api::task_events_url(id)).ok()?;
    live.link.set(Link::Connecting);
    let on_event = {
        let source = source.clone();
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let Some(data) = ev.data().as_string() else {
                return;
            };
            let Ok(event) = serde_json::from_str::<TaskEvent>(&data) else {
                return;
            };
            let status_change = matches!(event.body, TaskEventBody::Status { .. });
            if live.apply(event) {
                source.close();
                live.link.set(Link::Done);
            }
            if status_change {
                live.refresh();
            }
        })
    };
    let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        if live.link.get_untracked() != Link::Done {
            live.link.set(Link::Open);
        }
    });
    let on_error = {
        let source = source.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if live.link.get_untracked() == Link::Done {
                return;
            }
            if source.ready_state() == web_sys::EventSource::CLOSED {
                live.link.set(Link::Closed);
                live.refresh();
            } else {
                live.link.set(Link::Connecting);
            }
        })
    };
    for kind in ["log", "progress", "status"] {
        let _ = source.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
    }
    let _ = source.add_event_listener_with_callback("open", on_open.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref());
    Some(Stream {
        source,
        _on_event: on_event,
        _on_open: on_open,
        _on_error: on_error,
    })
}

fn phase_title(phase: &str) -> &str {
    match phase {
        "features" => "Computing features",
        "head" => "Training the head",
        "finetune" => "Fine-tuning",
        "detector" => "Fine-tuning the text detector",
        other => other,
    }
}

/// The points of the curves: `(elapsed seconds, value)` of each progress event that has
/// the value (feature extraction has no loss yet).
fn curve(points: &[Progress], value: impl Fn(&Progress) -> Option<f64>) -> Vec<(f64, f64)> {
    points
        .iter()
        .filter(|p| p.phase != "features")
        .filter_map(|p| value(p).map(|v| (p.elapsed_s, v)))
        .collect()
}

/// The training and the validation curve of one measure (`loss`, `accuracy`).
fn train_and_validation(
    points: &[Progress],
    measure: &str,
    train: impl Fn(&Progress) -> Option<f64>,
    validation: impl Fn(&Progress) -> Option<f64>,
) -> Vec<Series> {
    vec![
        Series {
            name: format!("train {measure}"),
            color: TRAIN_COLOR,
            dashed: false,
            points: curve(points, train),
        },
        Series {
            name: format!("validation {measure}"),
            color: VAL_COLOR,
            dashed: true,
            points: curve(points, validation),
        },
    ]
}

/// Where a new training phase begins.
fn phase_markers(points: &[Progress]) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut phase = None::<&str>;
    for p in points.iter().filter(|p| p.phase != "features") {
        if phase.is_some_and(|ph| ph != p.phase) {
            out.push(Marker {
                x: p.elapsed_s,
                label: phase_title(&p.phase).to_owned(),
            });
        }
        phase = Some(&p.phase);
    }
    out
}

#[component]
fn TaskView(task: Task, instance: Instance) -> impl IntoView {
    let session = use_session();
    let id = task.id;
    // A detector's "accuracy" curve is mAP@0.5 on validation (and the share of object
    // locations classified right in training).
    let (quality_title, quality_axis) =
        if task.preset.instance_type() == InstanceType::ObjectDetection {
            (
                "Accuracy (train: object locations) · mAP@0.5 (validation)",
                "mAP@0.5",
            )
        } else {
            ("Accuracy", "accuracy")
        };
    // The stream replays every progress event; the row's latest one only bridges the wait.
    let live = Live {
        points: RwSignal::new(task.last_progress.iter().cloned().collect()),
        task: RwSignal::new(task),
        logs: RwSignal::new(Vec::new()),
        link: RwSignal::new(Link::Connecting),
        last_seq: RwSignal::new(0),
        progress_at: RwSignal::new(js_sys::Date::now()),
        seeded: RwSignal::new(true),
        session,
    };

    let stream = StoredValue::new_local(open_stream(id, live));
    on_cleanup(move || {
        stream.try_update_value(|s| {
            s.take();
        });
    });
    let reconnect = move |_| {
        stream.update_value(|s| {
            s.take();
            *s = open_stream(id, live);
        });
    };

    // A clock for the duration and the countdown.
    let now = RwSignal::new(js_sys::Date::now());
    if let Ok(handle) = set_interval_with_handle(
        move || {
            now.try_set(js_sys::Date::now());
        },
        std::time::Duration::from_secs(1),
    ) {
        on_cleanup(move || handle.clear());
    }

    let task = live.task;
    let status = Memo::new(move |_| task.with(|t| t.status));
    let finished = move || status.get().is_finished();
    let stop_requested = Memo::new(move |_| task.with(|t| t.stop_requested));

    let stopping = RwSignal::new(false);
    let action_error = RwSignal::new(None::<String>);
    let stop = move |_| {
        stopping.set(true);
        action_error.set(None);
        spawn_local(async move {
            match api::stop_task(id).await {
                Ok(t) => task.update(|old| {
                    old.stop_requested = t.stop_requested;
                    if t.status.is_finished() {
                        old.status = t.status;
                    }
                }),
                Err(e) => {
                    session.check(&e);
                    action_error.set(Some(sentence(&e.message)));
                }
            }
            stopping.set(false);
        });
    };

    let duration = move || {
        let n = now.get();
        task.with(|t| {
            let start = t.started_at.as_deref()?;
            let ms = match t.finished_at.as_deref() {
                Some(end) => format::elapsed_ms(start, Some(end))?,
                None if t.status.is_finished() => return None,
                None => (n - js_sys::Date::new(&start.into()).get_time()).max(0.0),
            };
            Some(format::duration(ms / 1000.0))
        })
        .unwrap_or_else(|| "–".to_owned())
    };
    let eta = move || {
        if finished() {
            return None;
        }
        let since = (now.get() - live.progress_at.get()) / 1000.0;
        task.with(|t| {
            t.last_progress
                .as_ref()
                .map(|p| format::duration((p.eta_s - since).max(0.0)))
        })
    };
    let stage = move || {
        task.with(|t| match (&t.last_progress, t.status) {
            (_, TaskStatus::Queued) => "Waiting for a worker…".to_owned(),
            (Some(p), TaskStatus::Running) => {
                format!("{} · epoch {}", phase_title(&p.phase), p.epoch)
            }
            (None, TaskStatus::Running) => "Preparing the data…".to_owned(),
            (_, TaskStatus::Succeeded) => "Finished.".to_owned(),
            (_, TaskStatus::Failed) => "Failed.".to_owned(),
            (_, TaskStatus::Stopped) => "Stopped.".to_owned(),
        })
    };

    let loss = Signal::derive(move || {
        live.points
            .with(|p| train_and_validation(p, "loss", |p| Some(p.train_loss), |p| p.val_loss))
    });
    let accuracy = Signal::derive(move || {
        live.points.with(|p| {
            train_and_validation(
                p,
                "accuracy",
                |p| Some(p.train_accuracy),
                |p| p.val_accuracy,
            )
        })
    });
    let markers = Signal::derive(move || live.points.with(|p| phase_markers(p)));

    // The log follows new lines while it is scrolled to the bottom.
    let log_ref = NodeRef::<html::Pre>::new();
    let follow = RwSignal::new(true);
    Effect::new(move |_| {
        live.logs.track();
        if follow.get_untracked() {
            request_animation_frame(move || {
                if let Some(el) = log_ref.get_untracked() {
                    el.set_scroll_top(el.scroll_height());
                }
            });
        }
    });
    let log_text = move || {
        live.logs.with(|l| {
            l.iter()
                .map(|l| format!("{}  {}", format::clock(&l.at), l.line))
                .collect::<Vec<_>>()
                .join("\n")
        })
    };

    let facts = move || task.get();

    view! {
        <Breadcrumb instance_id=instance.id instance_name=instance.name/>
        <div class="page-head">
            <div>
                <h1 data-testid="task-title">{move || task.with(|t| t.name.clone())}</h1>
                <div class="title-line">
                    {move || status_badge(status.get())}
                    <span class="live" data-testid="task-live" data-state=move || live.link.get().as_str()>
                        {move || match live.link.get() {
                            Link::Connecting => "Connecting…",
                            Link::Open => "Live",
                            Link::Closed => "Live updates stopped",
                            Link::Done => "",
                        }}
                    </span>
                    <Show when=move || live.link.get() == Link::Closed && !finished()>
                        <button class="button subtle small" data-testid="task-reconnect" on:click=reconnect>
                            "Reconnect"
                        </button>
                    </Show>
                </div>
            </div>
            <div class="head-actions">
                <a class="button subtle" href=api::task_logs_url(id) target="_blank" data-testid="task-log-download">
                    "Full log"
                </a>
                <Show when=move || !finished()>
                    <button
                        class="button danger"
                        data-testid="task-stop"
                        on:click=stop
                        disabled=move || stopping.get() || stop_requested.get()
                    >
                        {move || if stop_requested.get() { "Stopping…" } else { "Stop" }}
                    </button>
                </Show>
            </div>
        </div>
        <ErrorNotice error=action_error testid="task-action-error"/>
        {move || {
            task.with(|t| {
                match (t.status, t.model_id, &t.error) {
                    (TaskStatus::Failed, _, error) => {
                        let why = error.as_deref().map(sentence).unwrap_or_else(|| "No reason was given.".to_owned());
                        Some(
                            view! {
                                <p class="alert error" role="alert" data-testid="task-failed">
                                    "Training failed: " {why}
                                </p>
                            }
                                .into_any(),
                        )
                    }
                    (status, Some(model), _) if status.is_finished() => {
                        Some(
                            view! {
                                <p class="alert ok" role="status" data-testid="task-done">
                                    {if status == TaskStatus::Stopped { "Stopped early; the best model so far was kept. " } else { "Training finished. " }}
                                    <A href=format!("/models/{model}") attr:data-testid="task-model-link">
                                        "Open the model"
                                    </A>
                                </p>
                            }
                                .into_any(),
                        )
                    }
                    (TaskStatus::Stopped, None, _) => {
                        Some(
                            view! {
                                <p class="alert" role="status" data-testid="task-done">"Stopped before a model was made."</p>
                            }
                                .into_any(),
                        )
                    }
                    _ => None,
                }
            })
        }}
        <dl class="facts panel task-facts" data-testid="task-facts">
            <div>
                <dt>"Task id"</dt>
                <dd data-testid="task-id">{id}</dd>
            </div>
            <div>
                <dt>"Started"</dt>
                <dd data-testid="task-started">
                    {move || facts().started_at.map(|s| format::timestamp(&s)).unwrap_or_else(|| "not yet".to_owned())}
                </dd>
            </div>
            <div>
                <dt>"Duration"</dt>
                <dd data-testid="task-duration">{duration}</dd>
            </div>
            <div>
                <dt>"Device"</dt>
                <dd data-testid="task-device">
                    {move || {
                        let t = facts();
                        t.device_used.unwrap_or_else(|| format!("{} (requested)", t.device.as_str()))
                    }}
                </dd>
            </div>
            <div>
                <dt>"Worker"</dt>
                <dd data-testid="task-worker">{move || facts().worker.unwrap_or_else(|| "–".to_owned())}</dd>
            </div>
            <div>
                <dt>"Attempts"</dt>
                <dd data-testid="task-attempts">{move || facts().attempts}</dd>
            </div>
            <div>
                <dt>"Preset"</dt>
                <dd>{move || preset_title(facts().preset)}</dd>
            </div>
            <div>
                <dt>"Labels"</dt>
                <dd data-testid="task-labels-shown">{move || facts().labels.join(", ")}</dd>
            </div>
            <div>
                <dt>"Budget"</dt>
                <dd>
                    {move || {
                        let t = facts();
                        let mut s = format!("{} min · {} px", t.max_minutes, t.image_size);
                        if let Some(e) = t.max_epochs {
                            s.push_str(&format!(" · ≤ {e} epochs"));
                        }
                        s
                    }}
                </dd>
            </div>
        </dl>
        <section class="section" data-testid="task-progress-panel">
            <h2>"Progress"</h2>
            {move || progress_bar(task.with(|t| if t.status == TaskStatus::Succeeded { 1.0 } else { t.progress }), "task-progress")}
            <p class="small muted">
                <span data-testid="task-stage">{stage}</span>
                {move || eta().map(|e| view! { " · about " <span data-testid="task-eta">{e}</span> " left" })}
            </p>
        </section>
        <section class="section">
            <h2>"Curves"</h2>
            <div class="charts">
                <TimeChart
                    title="Loss"
                    y_label="loss"
                    y_axis=YAxis::FromZero
                    series=loss
                    markers=markers
                    testid="loss-chart"
                />
                <TimeChart
                    title=quality_title
                    y_label=quality_axis
                    y_axis=YAxis::Share
                    series=accuracy
                    markers=markers
                    testid="accuracy-chart"
                />
            </div>
        </section>
        <section class="section">
            <h2>"Log"</h2>
            <pre
                class="log"
                data-testid="task-log"
                data-lines=move || live.logs.with(Vec::len)
                node_ref=log_ref
                on:scroll=move |_| {
                    if let Some(el) = log_ref.get_untracked() {
                        let bottom = el.scroll_top() + el.client_height() >= el.scroll_height() - 8;
                        follow.set(bottom);
                    }
                }
            >
                {log_text}
            </pre>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(phase: &str, elapsed_s: f64, val: Option<f64>) -> Progress {
        Progress {
            phase: phase.into(),
            epoch: 1,
            step: 1,
            elapsed_s,
            eta_s: 10.0,
            progress: 0.5,
            train_loss: 1.0,
            train_accuracy: 0.5,
            val_loss: val,
            val_accuracy: val,
            metric: None,
        }
    }

    #[test]
    fn curves_skip_missing_values_and_mark_phase_changes() {
        let points = [
            progress("features", 1.0, None),
            progress("head", 2.0, Some(0.9)),
            progress("head", 3.0, None),
            progress("finetune", 4.0, Some(0.7)),
        ];
        assert_eq!(curve(&points, |p| p.val_loss), vec![(2.0, 0.9), (4.0, 0.7)]);
        assert_eq!(curve(&points, |p| Some(p.train_loss)).len(), 3);
        assert_eq!(
            phase_markers(&points),
            vec![Marker {
                x: 4.0,
                label: "Fine-tuning".into()
            }]
        );
    }

    #[test]
    fn events_parse_as_the_server_sends_them() {
        let json = r#"{"seq":3,"at":"2025-01-01T00:00:00Z","kind":"progress","phase":"head","epoch":1,"step":4,"elapsed_s":1.5,"eta_s":20.0,"progress":0.1,"train_loss":1.1,"train_accuracy":0.4,"val_loss":1.0,"val_accuracy":0.5}"#;
        let e: TaskEvent = serde_json::from_str(json).unwrap();
        assert!(matches!(e.body, TaskEventBody::Progress(ref p) if p.epoch == 1));
        let json = r#"{"seq":9,"at":"2025-01-01T00:00:00Z","kind":"status","status":"succeeded","model_id":5}"#;
        let e: TaskEvent = serde_json::from_str(json).unwrap();
        assert!(matches!(
            e.body,
            TaskEventBody::Status {
                status: TaskStatus::Succeeded,
                model_id: Some(5),
                ..
            }
        ));
    }
}
