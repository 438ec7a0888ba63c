//! The training part of an image_classification instance page (SPEC §5): the form that
//! queues a training task, the list of tasks (status, progress), the model versions they
//! produced and the services deployed from them. Running tasks are polled here; the task
//! page has the live stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::InstanceType;
use shared::names::TaskName;
use shared::train::{
    CreateTask, DeviceChoice, MAX_EPOCHS, MIN_IMAGE_SIZE, ModelVersion, Preset, Task, TaskStatus,
};

use crate::api::{self, ApiError};
use crate::form::{FieldMessage, NumberField, invalid};
use crate::pages::common::{ErrorNotice, OpenFormButton, list_or_empty};
use crate::pages::deploy::{ServiceList, predict_services};
use crate::save::sentence;
use crate::timers::{alive_flag, sleep};
use crate::{format, use_session};

/// How often the task list is fetched again while a task is queued or running.
const POLL_MS: i32 = 2500;
/// The form's default time budget, and the largest the server accepts.
const DEFAULT_MINUTES: &str = "10";
const MAX_MINUTES: f64 = 60.0;
/// Form fields that show their own errors (the server's `field` names).
const FORM_FIELDS: [&str; 8] = [
    "name",
    "dataset_id",
    "labels",
    "max_minutes",
    "base_model_id",
    "image_size",
    "max_epochs",
    "seed",
];

pub fn preset_title(p: Preset) -> &'static str {
    match p {
        Preset::ClassificationFast => "Fast (224 px)",
        Preset::ClassificationAccurate => "Accurate (288 px, longer fine-tuning)",
        Preset::DetectionFast => "Fast (320 px)",
        Preset::DetectionAccurate => "Accurate (416 px, larger pyramid, longer fine-tuning)",
        Preset::OcrFast => "Fast (PP-OCRv4 mobile, recogniser fine-tuned)",
    }
}

fn device_title(d: DeviceChoice) -> &'static str {
    match d {
        DeviceChoice::Auto => "Auto (GPU when available)",
        DeviceChoice::Cpu => "CPU",
        DeviceChoice::Gpu => "GPU",
    }
}

/// The devices the form offers, in its order.
const DEVICES: [DeviceChoice; 3] = [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Gpu];

/// A setting the task form offers in a `<select>`: its value there, and its title.
trait Choice: Copy + PartialEq + Send + Sync + 'static {
    fn value(self) -> &'static str;
    fn title(self) -> &'static str;
    fn parse(value: &str) -> Option<Self>;
}

impl Choice for Preset {
    fn value(self) -> &'static str {
        self.as_str()
    }
    fn title(self) -> &'static str {
        preset_title(self)
    }
    fn parse(value: &str) -> Option<Self> {
        Preset::parse(value)
    }
}

impl Choice for DeviceChoice {
    fn value(self) -> &'static str {
        self.as_str()
    }
    fn title(self) -> &'static str {
        device_title(self)
    }
    fn parse(value: &str) -> Option<Self> {
        DeviceChoice::parse(value)
    }
}

/// A labelled `<select>` of `choices` bound to `value`; `changed` runs after the user picks.
fn choice_field<C: Choice>(
    label: &'static str,
    testid: &'static str,
    choices: impl IntoIterator<Item = C>,
    value: RwSignal<C>,
    changed: impl Fn() + 'static,
) -> impl IntoView {
    let options = choices
        .into_iter()
        .map(|c| {
            view! {
                <option value=c.value() prop:selected=move || value.get() == c>
                    {c.title()}
                </option>
            }
        })
        .collect_view();
    view! {
        <label class="field">
            <span>{label}</span>
            <select
                data-testid=testid
                on:change=move |ev| {
                    if let Some(c) = C::parse(&event_target_value(&ev)) {
                        value.set(c);
                        changed();
                    }
                }
            >
                {options}
            </select>
        </label>
    }
}

/// A task's status as a coloured badge.
pub fn status_badge(status: TaskStatus) -> impl IntoView {
    let title = match status {
        TaskStatus::Queued => "Queued",
        TaskStatus::Running => "Running",
        TaskStatus::Succeeded => "Succeeded",
        TaskStatus::Failed => "Failed",
        TaskStatus::Stopped => "Stopped",
    };
    view! {
        <span
            class=format!("badge status status-{}", status.as_str())
            data-testid="task-status"
            data-status=status.as_str()
        >
            {title}
        </span>
    }
}

/// A progress bar with its percentage.
pub fn progress_bar(progress: f64, testid: &'static str) -> impl IntoView {
    let p = if progress.is_finite() {
        progress.clamp(0.0, 1.0)
    } else {
        0.0
    };
    view! {
        <div class="job-line">
            <progress data-testid=testid max="1" prop:value=p></progress>
            <span class="job-percent">{format!("{:.0}%", p * 100.0)}</span>
        </div>
    }
}

/// Tasks, models and the task form of one instance whose kind trains (classification,
/// detection).
#[component]
pub fn TrainingSection(instance: i64, kind: InstanceType) -> impl IntoView {
    let session = use_session();
    let tasks = LocalResource::new(move || session.checked(api::list_tasks(instance)));
    let models = LocalResource::new(move || session.checked(api::list_models(instance)));
    let services = predict_services(instance, None);
    let versions = Signal::derive(move || {
        models
            .get()
            .and_then(Result::ok)
            .map(|list| list.iter().map(|m| (m.id, m.version)).collect())
            .unwrap_or_default()
    });
    let show_form = RwSignal::new(false);

    // While something is queued or running, fetch the list again now and then; when a
    // task has finished since, its model version shows up too.
    let alive = alive_flag();
    spawn_local(async move {
        let mut finished = None::<usize>;
        loop {
            sleep(POLL_MS).await;
            if !alive.load(Ordering::Relaxed) {
                return;
            }
            let Some(Ok(list)) = tasks.get_untracked() else {
                continue;
            };
            let done = list.iter().filter(|t| t.status.is_finished()).count();
            if finished.is_some_and(|f| f != done) {
                models.refetch();
            }
            finished = Some(done);
            if list.iter().any(|t| !t.status.is_finished()) {
                tasks.refetch();
            }
        }
    });

    view! {
        <section class="section" data-testid="tasks-section">
            <div class="section-head">
                <h2>"Training tasks"</h2>
                <OpenFormButton open=show_form testid="new-task" label="New training task"/>
            </div>
            <Show when=move || show_form.get()>
                <TaskForm instance=instance kind=kind on_cancel=Callback::new(move |()| show_form.set(false))/>
            </Show>
            <Transition fallback=|| view! { <p class="muted">"Loading tasks…"</p> }>
                {move || {
                    tasks
                        .get()
                        .map(|result| {
                            list_or_empty(
                                result,
                                "tasks-error",
                                || {
                                    view! {
                                        <p class="muted" data-testid="tasks-empty">"No training tasks yet."</p>
                                    }
                                },
                                |list| {
                                    view! {
                                        <ul class="task-list" data-testid="task-list">
                                            {list.into_iter().map(|t| view! { <TaskRow task=t/> }).collect_view()}
                                        </ul>
                                    }
                                },
                            )
                        })
                }}
            </Transition>
        </section>
        <section class="section" data-testid="models-section">
            <h2>"Model versions"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading models…"</p> }>
                {move || {
                    models
                        .get()
                        .map(|result| {
                            list_or_empty(
                                result,
                                "models-error",
                                || {
                                    view! {
                                        <p class="muted" data-testid="models-empty">
                                            "No model versions yet. A task that succeeds adds one."
                                        </p>
                                    }
                                },
                                |list| view! { <ModelTable models=list/> },
                            )
                        })
                }}
            </Transition>
        </section>
        <section class="section" data-testid="instance-services">
            <h2>"Services"</h2>
            <div class="panel">
                <ServiceList
                    list=services
                    empty="No version is deployed. Deploy one from its model page."
                    versions=versions
                />
            </div>
        </section>
    }
}

#[component]
fn TaskRow(task: Task) -> impl IntoView {
    let href = format!("/tasks/{}", task.id);
    let finished = task.status.is_finished();
    let name = task.name.clone();
    let data_name = task.name.clone();
    let error = task.error.clone();
    view! {
        <li
            class="task-row"
            data-testid="task-row"
            data-task-id=task.id
            data-name=data_name
            data-status=task.status.as_str()
        >
            <div class="row-main">
                <A href=href attr:class="row-name" attr:data-testid="task-link">{name}</A>
                {status_badge(task.status)}
                {task.stop_requested
                    .then(|| (!finished).then(|| view! { <span class="muted small">"stopping…"</span> }))}
            </div>
            {(!finished).then(|| progress_bar(task.progress, "task-row-progress"))}
            <div class="row-facts muted">
                <span>{task.preset.as_str()}</span>
                <span>{format!("{} labels", task.labels.len())}</span>
                <span>
                    "Created "
                    <time datetime=task.created_at.clone()>{format::timestamp(&task.created_at)}</time>
                </span>
                {task.model_id
                    .map(|m| {
                        view! {
                            <A href=format!("/models/{m}") attr:data-testid="task-row-model">"Model"</A>
                        }
                    })}
                {error.map(|e| view! { <span class="row-error" title=e.clone()>{sentence(&e)}</span> })}
            </div>
        </li>
    }
}

#[component]
fn ModelTable(models: Vec<ModelVersion>) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="table" data-testid="model-list">
                <thead>
                    <tr>
                        <th>"Version"</th>
                        <th>"Accuracy"</th>
                        <th>"F1"</th>
                        <th>"Size"</th>
                        <th>"Preset"</th>
                        <th>"Created"</th>
                    </tr>
                </thead>
                <tbody>
                    {models
                        .into_iter()
                        .map(|m| {
                            view! {
                                <tr data-testid="model-row" data-model-id=m.id data-version=m.version>
                                    <td>
                                        <A href=format!("/models/{}", m.id) attr:data-testid="model-link">
                                            {format!("v{}", m.version)}
                                        </A>
                                    </td>
                                    <td data-testid="model-accuracy">{format::percent(m.metrics.headline().1)}</td>
                                    <td>{m.metrics.classification().map(|c| format::percent(c.f1))}</td>
                                    <td>{format::bytes(m.size_bytes)}</td>
                                    <td>{m.preset.as_str()}</td>
                                    <td>
                                        <time datetime=m.created_at.clone()>{format::timestamp(&m.created_at)}</time>
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// What the form sends, checked the way the server checks it; errors by field.
struct Draft {
    name: String,
    dataset: Option<i64>,
    labels: Vec<String>,
    preset: Preset,
    device: DeviceChoice,
    max_minutes: String,
    base_model: Option<i64>,
    image_size: String,
    max_epochs: String,
    seed: String,
}

impl Draft {
    fn check(self) -> Result<(i64, CreateTask), BTreeMap<&'static str, String>> {
        let mut errors = BTreeMap::new();
        if let Err(e) = TaskName::parse(self.name.as_str()) {
            errors.insert("name", e.to_string());
        }
        if self.dataset.is_none() {
            errors.insert("dataset_id", "Choose the dataset to learn from.".to_owned());
        }
        // A detector may learn one kind of object (OCR: its one label, `text`); a
        // classifier needs two to choose from.
        if matches!(
            self.preset.instance_type(),
            InstanceType::ObjectDetection | InstanceType::Ocr
        ) {
            if self.labels.is_empty() {
                errors.insert("labels", "Choose at least one label to learn.".to_owned());
            }
        } else if self.labels.len() < 2 {
            errors.insert("labels", "Choose at least two labels to learn.".to_owned());
        }
        let max_minutes = match self.max_minutes.trim().parse::<f64>() {
            Ok(m) if m.is_finite() && m > 0.0 && m <= MAX_MINUTES => m,
            _ => {
                errors.insert(
                    "max_minutes",
                    format!("Enter a time budget in minutes, at most {MAX_MINUTES}."),
                );
                0.0
            }
        };
        // OCR reads whole pages: its detector size goes up to the preset's own maximum.
        let max_size = self.preset.max_image_size();
        let image_size = match self.image_size.trim() {
            "" => None,
            s => match s.parse::<u32>() {
                Ok(n) if (MIN_IMAGE_SIZE..=max_size).contains(&n) && n % 32 == 0 => {
                    (n != self.preset.image_size()).then_some(n)
                }
                _ => {
                    errors.insert(
                        "image_size",
                        format!(
                            "Image size must be a multiple of 32 from {MIN_IMAGE_SIZE} to {max_size}."
                        ),
                    );
                    None
                }
            },
        };
        let max_epochs = match self.max_epochs.trim() {
            "" => None,
            s => match s.parse::<u32>() {
                Ok(n) if (1..=MAX_EPOCHS).contains(&n) => Some(n),
                _ => {
                    errors.insert(
                        "max_epochs",
                        format!("Max epochs must be 1 to {MAX_EPOCHS}, or empty for no cap."),
                    );
                    None
                }
            },
        };
        let seed = match self.seed.trim() {
            "" => None,
            s => match s.parse::<u64>() {
                Ok(n) if n <= i64::MAX as u64 => Some(n),
                _ => {
                    errors.insert(
                        "seed",
                        "The seed is a whole number below 2^63, or empty for a random one."
                            .to_owned(),
                    );
                    None
                }
            },
        };
        match self.dataset {
            Some(dataset_id) if errors.is_empty() => Ok((
                dataset_id,
                CreateTask {
                    name: self.name,
                    description: String::new(),
                    dataset_id,
                    labels: self.labels,
                    preset: self.preset,
                    device: self.device,
                    max_minutes,
                    base_model_id: self.base_model,
                    image_size,
                    max_epochs,
                    seed,
                    patience: None,
                },
            )),
            _ => Err(errors),
        }
    }
}

/// Queues a training task, then opens its page.
#[component]
fn TaskForm(instance: i64, kind: InstanceType, on_cancel: Callback<()>) -> impl IntoView {
    let presets = Preset::for_type(kind);
    let first_preset = presets
        .first()
        .copied()
        .unwrap_or(Preset::ClassificationFast);
    let session = use_session();
    let navigate = use_navigate();
    let datasets = LocalResource::new(move || session.checked(api::list_datasets(instance)));
    let models = LocalResource::new(move || session.checked(api::list_models(instance)));

    let name = RwSignal::new(String::new());
    let touched = RwSignal::new(false);
    let dataset = RwSignal::new(None::<i64>);
    let labels = RwSignal::new(BTreeSet::<String>::new());
    let preset = RwSignal::new(first_preset);
    let device = RwSignal::new(DeviceChoice::Auto);
    let max_minutes = RwSignal::new(DEFAULT_MINUTES.to_owned());
    let base_model = RwSignal::new(None::<i64>);
    let image_size = RwSignal::new(first_preset.image_size().to_string());
    let image_size_edited = RwSignal::new(false);
    let max_epochs = RwSignal::new(String::new());
    let seed = RwSignal::new(String::new());
    let pending = RwSignal::new(false);
    let local_errors = RwSignal::new(BTreeMap::<&'static str, String>::new());
    let server_error = RwSignal::new(None::<ApiError>);

    // The first dataset is chosen once the list is there.
    Effect::new(move |_| {
        if dataset.get_untracked().is_none()
            && let Some(Ok(list)) = datasets.get()
            && let Some(first) = list.first()
        {
            dataset.set(Some(first.id));
        }
    });
    // The chosen dataset's current counts per label.
    let detail = LocalResource::new(move || {
        let id = dataset.get();
        async move {
            let id = id?;
            Some(session.checked(api::get_dataset(id)).await)
        }
    });
    // A new dataset starts with every label that has enough images ticked.
    Effect::new(move |_| {
        if let Some(Some(Ok(d))) = detail.get() {
            labels.set(
                d.per_label
                    .iter()
                    .filter(|(_, n)| **n >= 2)
                    .map(|(l, _)| l.clone())
                    .collect(),
            );
        }
    });
    // The image size follows the preset until the user sets one.
    Effect::new(move |_| {
        let p = preset.get();
        if !image_size_edited.get_untracked() {
            image_size.set(p.image_size().to_string());
        }
    });

    let name_rule =
        Memo::new(move |_| name.with(|n| TaskName::parse(n.as_str()).err().map(|e| e.to_string())));
    let field_error = move |field: &'static str| {
        server_error
            .with(|e| {
                e.as_ref()
                    .filter(|e| e.is_for_field(field))
                    .map(|e| e.message.clone())
            })
            .or_else(|| local_errors.with(|m| m.get(field).cloned()))
            .or_else(|| {
                (field == "name" && touched.get())
                    .then(|| name_rule.get())
                    .flatten()
            })
    };
    let error = move |field: &'static str| Signal::derive(move || field_error(field));
    let other_error = Signal::derive(move || {
        server_error.with(|e| {
            e.as_ref()
                .filter(|e| !FORM_FIELDS.iter().any(|f| e.is_for_field(f)))
                .map(|e| sentence(&e.message))
        })
    });
    let edited = move || {
        server_error.set(None);
        local_errors.set(BTreeMap::new());
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if pending.get_untracked() {
            return;
        }
        let draft = Draft {
            name: name.get_untracked(),
            dataset: dataset.get_untracked(),
            labels: labels.get_untracked().into_iter().collect(),
            preset: preset.get_untracked(),
            device: device.get_untracked(),
            max_minutes: max_minutes.get_untracked(),
            base_model: base_model.get_untracked(),
            image_size: image_size.get_untracked(),
            max_epochs: max_epochs.get_untracked(),
            seed: seed.get_untracked(),
        };
        server_error.set(None);
        let body = match draft.check() {
            Ok((_, body)) => body,
            Err(errors) => {
                local_errors.set(errors);
                return;
            }
        };
        local_errors.set(BTreeMap::new());
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let result = api::create_task(instance, &body).await;
            pending.set(false);
            match result {
                Ok(task) => navigate(&format!("/tasks/{}", task.id), Default::default()),
                Err(e) => {
                    session.check(&e);
                    server_error.set(Some(e));
                }
            }
        });
    };

    let dataset_options = move || {
        datasets.get().map(|result| match result {
            Ok(list) => list
                .into_iter()
                .map(|d| {
                    let id = d.id;
                    view! {
                        <option value=id.to_string() prop:selected=move || dataset.get() == Some(id)>
                            {format!("{} ({})", d.name, format::count(d.labelled, "labelled image", "labelled images"))}
                        </option>
                    }
                })
                .collect_view()
                .into_any(),
            Err(e) => view! { <option value="" disabled=true>{e.message}</option> }.into_any(),
        })
    };
    let no_datasets = move || matches!(datasets.get(), Some(Ok(list)) if list.is_empty());

    let label_picks = move || {
        match detail.get() {
            None | Some(None) => view! { <p class="muted small">"Loading labels…"</p> }.into_any(),
            Some(Some(Err(e))) => view! { <p class="alert error" role="alert">{e.message}</p> }.into_any(),
            Some(Some(Ok(d))) if d.per_label.is_empty() => {
                view! {
                    <p class="muted small" data-testid="task-labels-empty">
                        "This dataset has no labelled images yet. Label some first."
                    </p>
                }
                    .into_any()
            }
            Some(Some(Ok(d))) => d
                .per_label
                .into_iter()
                .map(|(label, n)| {
                    let enough = n >= 2;
                    let this = label.clone();
                    let toggled = label.clone();
                    view! {
                        <label class="check" class:disabled=!enough title={(!enough).then_some("Label at least 2 images to learn this label")}>
                            <input
                                type="checkbox"
                                data-testid="task-label"
                                value=label.clone()
                                disabled=!enough
                                prop:checked=move || labels.with(|s| s.contains(&this))
                                on:change=move |ev| {
                                    let on = event_target_checked(&ev);
                                    labels.update(|s| {
                                        if on {
                                            s.insert(toggled.clone());
                                        } else {
                                            s.remove(&toggled);
                                        }
                                    });
                                    edited();
                                }
                            />
                            <span>{label.clone()}</span>
                            <span class="chip-count">{n}</span>
                        </label>
                    }
                })
                .collect_view()
                .into_any(),
        }
    };

    let model_options = move || {
        models
            .get()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let id = m.id;
                view! {
                    <option value=id.to_string() prop:selected=move || base_model.get() == Some(id)>
                        {format!(
                            "v{} · {} {} · {}",
                            m.version,
                            format::percent(m.metrics.headline().1),
                            m.metrics.headline().0,
                            m.preset.as_str(),
                        )}
                    </option>
                }
            })
            .collect_view()
    };
    let choose_base = move |ev: leptos::ev::Event| {
        let id = event_target_value(&ev).parse::<i64>().ok();
        base_model.set(id);
        // Incremental training keeps the preset of the model it starts from.
        if let Some(m) = id.and_then(|id| {
            models
                .get_untracked()
                .and_then(Result::ok)
                .and_then(|list| list.into_iter().find(|m| m.id == id))
        }) {
            preset.set(m.preset);
        }
        edited();
    };

    view! {
        <form class="panel create-form task-form" on:submit=submit novalidate=true data-testid="task-form">
            <h2>"New training task"</h2>
            <Show when=no_datasets>
                <p class="alert error" role="alert" data-testid="task-no-datasets">
                    "Index a dataset first: training learns from a dataset's labelled images."
                </p>
            </Show>
            <div class="form-grid">
                <label class="field">
                    <span>"Name"</span>
                    <input
                        type="text"
                        autocomplete="off"
                        spellcheck="false"
                        data-testid="task-name"
                        aria-invalid=invalid(error("name"))
                        prop:value=move || name.get()
                        on:input=move |ev| {
                            name.set(event_target_value(&ev));
                            touched.set(true);
                            edited();
                        }
                    />
                    <FieldMessage error=error("name") testid="task-name-error"/>
                </label>
                <label class="field">
                    <span>"Dataset"</span>
                    <select
                        data-testid="task-dataset"
                        aria-invalid=invalid(error("dataset_id"))
                        on:change=move |ev| {
                            dataset.set(event_target_value(&ev).parse::<i64>().ok());
                            edited();
                        }
                    >
                        {dataset_options}
                    </select>
                    <FieldMessage error=error("dataset_id") testid="task-dataset-error"/>
                </label>
            </div>
            <fieldset class="field label-picks" data-testid="task-labels">
                <legend>"Labels to learn"</legend>
                <div class="checks">
                    {label_picks}
                </div>
                <FieldMessage error=error("labels") testid="task-labels-error"/>
            </fieldset>
            <div class="form-grid three">
                {choice_field(
                    "Preset",
                    "task-preset",
                    presets.clone(),
                    preset,
                    edited,
                )}
                {choice_field("Device", "task-device", DEVICES, device, edited)}
                <NumberField
                    label="Max minutes"
                    value=max_minutes
                    error=error("max_minutes")
                    testid="task-max-minutes"
                    error_testid="task-max-minutes-error"
                    min=10
                    max={MAX_MINUTES as u32}
                    step="any"
                    decimal=true
                    on_input=move |()| edited()
                />
            </div>
            <label class="field">
                <span>"Start from model version " <small class="muted">"(optional: incremental training)"</small></span>
                <select data-testid="task-base-model" aria-invalid=invalid(error("base_model_id")) on:change=choose_base>
                    <option value="" prop:selected=move || base_model.get().is_none()>
                        "None: start from the pretrained backbone"
                    </option>
                    {model_options}
                </select>
                <FieldMessage error=error("base_model_id") testid="task-base-model-error"/>
            </label>
            <details class="advanced" data-testid="task-advanced-panel">
                <summary data-testid="task-advanced">"Advanced"</summary>
                <div class="form-grid three">
                    <NumberField
                        label="Image size (px)"
                        value=image_size
                        error=error("image_size")
                        testid="task-image-size"
                        error_testid="task-image-size-error"
                        min=MIN_IMAGE_SIZE
                        max=first_preset.max_image_size()
                        step="32"
                        on_input=move |()| {
                            image_size_edited.set(true);
                            edited();
                        }
                    />
                    <NumberField
                        label="Max epochs"
                        hint="(empty: no cap)"
                        value=max_epochs
                        error=error("max_epochs")
                        testid="task-max-epochs"
                        error_testid="task-max-epochs-error"
                        min=1
                        max=MAX_EPOCHS
                        step="1"
                        on_input=move |()| edited()
                    />
                    <NumberField
                        label="Seed"
                        hint="(empty: random)"
                        value=seed
                        error=error("seed")
                        testid="task-seed"
                        error_testid="task-seed-error"
                        min=0
                        step="1"
                        on_input=move |()| edited()
                    />
                </div>
                <p class="muted small">
                    "Smaller images and fewer epochs train faster; early stopping and the time budget still apply."
                </p>
            </details>
            <ErrorNotice error=other_error testid="task-error"/>
            <div class="actions">
                <button type="submit" class="button primary" data-testid="task-submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Starting…" } else { "Start training" }}
                </button>
                <button type="button" class="button subtle" data-testid="task-cancel" on:click=move |_| on_cancel.run(())>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            name: "shapes1".into(),
            dataset: Some(4),
            labels: vec!["circle".into(), "square".into()],
            preset: Preset::ClassificationFast,
            device: DeviceChoice::Auto,
            max_minutes: "0.5".into(),
            base_model: None,
            image_size: "224".into(),
            max_epochs: String::new(),
            seed: String::new(),
        }
    }

    #[test]
    fn a_good_draft_becomes_a_request() {
        let (dataset, body) = draft().check().unwrap();
        assert_eq!(dataset, 4);
        assert_eq!(body.max_minutes, 0.5);
        // The preset's own size is left to the server.
        assert_eq!(body.image_size, None);
        assert_eq!(body.max_epochs, None);
        let (_, body) = Draft {
            image_size: "64".into(),
            max_epochs: "2".into(),
            seed: "7".into(),
            ..draft()
        }
        .check()
        .unwrap();
        assert_eq!(
            (body.image_size, body.max_epochs, body.seed),
            (Some(64), Some(2), Some(7))
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let errors = Draft {
            name: "-x".into(),
            labels: vec!["circle".into()],
            max_minutes: "abc".into(),
            image_size: "100".into(),
            max_epochs: "0".into(),
            seed: "-1".into(),
            dataset: None,
            ..draft()
        }
        .check()
        .unwrap_err();
        let fields: Vec<&str> = errors.keys().copied().collect();
        assert_eq!(
            fields,
            [
                "dataset_id",
                "image_size",
                "labels",
                "max_epochs",
                "max_minutes",
                "name",
                "seed"
            ]
        );
    }
}
