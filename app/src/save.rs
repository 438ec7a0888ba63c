//! Saving annotations: every change is sent at once (`PUT /api/images/{id}/annotation`),
//! the page shows it as done before the server answers (optimistic), and a failed save is
//! retried with backoff until it lands, with a visible banner meanwhile.
//!
//! Per image at most one request is in flight; changes made meanwhile are coalesced and the
//! newest is sent next, so the server always ends with the last state the user saw. A
//! refusal (4xx: no permission, invalid box) is not retried: the page is told to show the
//! server's last saved annotation again, and the banner says why.
//!
//! Each save names the revision it edits (`If-Match`). When someone else saved the image
//! first (409), nothing is overwritten: the page is shown their newer state and the banner
//! says so.
//!
//! There is one queue for the whole app ([`provide_saver`], [`use_saver`]), owned by the
//! shell rather than a page: leaving a labelling page while a change is still on its way
//! does not drop it, and the banner stays visible wherever the user went.

use std::collections::HashMap;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use shared::api::Annotation;

use crate::api;
use crate::{Session, use_session};

/// What the save banner says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveProblem {
    pub message: String,
    /// `true` while the change is kept and will be sent again.
    pub retrying: bool,
}

#[derive(Default)]
struct Slot {
    /// The newest annotation not yet sent.
    queued: Option<Annotation>,
    in_flight: bool,
    /// Waiting for a retry timer.
    waiting: bool,
    /// Failed attempts in a row.
    attempt: u32,
    /// Identifies the current retry timer; an older one that fires does nothing.
    timer: u64,
    /// What the server holds, as far as we know.
    confirmed: Annotation,
    /// The revision of `confirmed`.
    revision: i64,
}

impl Slot {
    fn busy(&self) -> bool {
        self.in_flight || self.waiting || self.queued.is_some()
    }
}

/// The save queue of one page. `Copy`: every handle refers to the same queue.
#[derive(Clone, Copy)]
pub struct Saver {
    slots: StoredValue<HashMap<i64, Slot>>,
    /// Images with a change not yet confirmed by the server.
    pub pending: RwSignal<usize>,
    pub problem: RwSignal<Option<SaveProblem>>,
    /// Bumped after each confirmed save (pages refetch counts on it).
    pub saved: RwSignal<u64>,
    /// Set by the labelling page on screen, if any.
    on_refused: StoredValue<Option<Callback<(i64, Annotation)>>>,
    session: Session,
}

/// Creates the app's save queue (in the shell).
pub fn provide_saver() {
    provide_context(Saver::new());
}

pub fn use_saver() -> Saver {
    expect_context::<Saver>()
}

/// First retry after this; doubles up to [`MAX_DELAY_MS`].
const FIRST_DELAY_MS: u64 = 500;
const MAX_DELAY_MS: u64 = 15_000;

impl Saver {
    fn new() -> Self {
        let saver = Self {
            slots: StoredValue::new(HashMap::new()),
            pending: RwSignal::new(0),
            problem: RwSignal::new(None),
            saved: RwSignal::new(0),
            on_refused: StoredValue::new(None),
            session: use_session(),
        };
        // Leaving the app with unsaved changes asks first.
        let handle = window_event_listener_untyped("beforeunload", move |ev| {
            if saver.pending.try_get_untracked().unwrap_or(0) > 0 {
                ev.prevent_default();
                if let Ok(ev) = wasm_bindgen::JsCast::dyn_into::<web_sys::BeforeUnloadEvent>(ev) {
                    ev.set_return_value("Changes are still being saved.");
                }
            }
        });
        on_cleanup(move || handle.remove());
        saver
    }

    /// While the calling component lives, `on_refused` gets the image id and the annotation
    /// the server still holds after a change was refused, to show it again.
    pub fn on_refused(&self, on_refused: Callback<(i64, Annotation)>) {
        let slot = self.on_refused;
        slot.set_value(Some(on_refused));
        on_cleanup(move || {
            slot.try_update_value(|s| *s = None);
        });
    }

    /// Records `annotation` as the new state of `image` and sends it. `before` is what the
    /// server held before this change (used if the change is refused), at `revision`.
    pub fn save(&self, image: i64, revision: i64, annotation: Annotation, before: &Annotation) {
        let start = self
            .slots
            .try_update_value(|slots| {
                let slot = slots.entry(image).or_insert_with(|| Slot {
                    confirmed: before.clone(),
                    revision,
                    ..Slot::default()
                });
                // The page may have loaded a newer state than this queue last saw.
                if revision > slot.revision {
                    slot.revision = revision;
                    slot.confirmed = before.clone();
                }
                slot.queued = Some(annotation);
                !slot.in_flight && !slot.waiting
            })
            .unwrap_or(false);
        self.recount();
        if start {
            self.pump(image);
        }
    }

    /// Sends every change waiting for a retry now.
    pub fn retry_now(&self) {
        let ids: Vec<i64> = self
            .slots
            .try_update_value(|slots| {
                slots
                    .iter_mut()
                    .filter(|(_, s)| s.waiting)
                    .map(|(id, s)| {
                        s.waiting = false;
                        s.timer += 1;
                        *id
                    })
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            self.pump(id);
        }
    }

    pub fn dismiss(&self) {
        self.problem.set(None);
    }

    fn recount(&self) {
        let n = self
            .slots
            .with_value(|slots| slots.values().filter(|s| s.busy()).count());
        if self.pending.get_untracked() != n {
            self.pending.set(n);
        }
    }

    fn pump(self, image: i64) {
        let next = self
            .slots
            .try_update_value(|slots| {
                let slot = slots.get_mut(&image)?;
                if slot.in_flight {
                    return None;
                }
                let annotation = slot.queued.take()?;
                slot.in_flight = true;
                slot.waiting = false;
                Some((annotation, slot.revision))
            })
            .flatten();
        self.recount();
        let Some((annotation, revision)) = next else {
            return;
        };
        let session = self.session;
        spawn_local(async move {
            let result = api::put_annotation(image, revision, &annotation).await;
            match result {
                Ok(saved) => {
                    let more = self
                        .slots
                        .try_update_value(|slots| {
                            let slot = slots.get_mut(&image)?;
                            slot.in_flight = false;
                            slot.attempt = 0;
                            slot.confirmed = saved.annotation;
                            slot.revision = saved.revision;
                            Some(slot.queued.is_some())
                        })
                        .flatten()
                        .unwrap_or(false);
                    let others_failing = self
                        .slots
                        .with_value(|slots| slots.values().any(|s| s.attempt > 0));
                    if !others_failing
                        && self
                            .problem
                            .with_untracked(|p| p.as_ref().is_some_and(|p| p.retrying))
                    {
                        self.problem.set(None);
                    }
                    self.saved.update(|n| *n += 1);
                    self.recount();
                    if more {
                        self.pump(image);
                    }
                }
                Err(e) if e.is_transient() => {
                    let (delay, timer) = self
                        .slots
                        .try_update_value(|slots| {
                            let slot = slots.entry(image).or_default();
                            slot.in_flight = false;
                            // A newer change queued meanwhile replaces this one.
                            if slot.queued.is_none() {
                                slot.queued = Some(annotation);
                            }
                            slot.attempt += 1;
                            slot.waiting = true;
                            slot.timer += 1;
                            let delay = FIRST_DELAY_MS
                                .saturating_mul(1 << (slot.attempt - 1).min(10))
                                .min(MAX_DELAY_MS);
                            (delay, slot.timer)
                        })
                        .unwrap_or((FIRST_DELAY_MS, 0));
                    self.problem.set(Some(SaveProblem {
                        message: format!(
                            "Not saved yet: {} Retrying in {} s; your changes are kept.",
                            sentence(&e.message),
                            delay.div_ceil(1000)
                        ),
                        retrying: true,
                    }));
                    self.recount();
                    set_timeout(
                        move || {
                            let current = self
                                .slots
                                .try_update_value(|slots| {
                                    slots.get_mut(&image).is_some_and(|s| {
                                        let current = s.waiting && s.timer == timer;
                                        if current {
                                            s.waiting = false;
                                        }
                                        current
                                    })
                                })
                                .unwrap_or(false);
                            if current {
                                self.pump(image);
                            }
                        },
                        Duration::from_millis(delay),
                    );
                }
                Err(e) if e.status == 409 => {
                    // Someone else saved first: show theirs, drop ours (never overwrite).
                    let theirs = api::get_image(image).await.ok();
                    self.refused(
                        image,
                        theirs.map(|t| (t.annotation, t.revision)),
                        "Not saved: this image was changed elsewhere meanwhile. \
                         Showing the newer labels; redo your change on them."
                            .into(),
                    );
                }
                Err(e) => {
                    session.check(&e);
                    self.refused(image, None, format!("Not saved: {}", sentence(&e.message)));
                }
            }
        });
    }
}

impl Saver {
    /// A change the server refused: dropped, with the banner saying `message`; the page is
    /// shown `theirs` (the server's newer state, with its revision) or else what the server
    /// last confirmed.
    fn refused(self, image: i64, theirs: Option<(Annotation, i64)>, message: String) {
        let confirmed = self
            .slots
            .try_update_value(|slots| {
                let slot = slots.entry(image).or_default();
                slot.in_flight = false;
                slot.waiting = false;
                slot.queued = None;
                slot.attempt = 0;
                if let Some((annotation, revision)) = theirs {
                    slot.confirmed = annotation;
                    slot.revision = revision;
                }
                slot.confirmed.clone()
            })
            .unwrap_or_default();
        self.problem.set(Some(SaveProblem {
            message,
            retrying: false,
        }));
        self.recount();
        if let Some(cb) = self.on_refused.get_value() {
            cb.try_run((image, confirmed));
        }
    }
}

/// The server's message as a sentence (capitalised, ending in a full stop).
pub fn sentence(message: &str) -> String {
    let message = message.trim();
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// "All changes saved" / "Saving…" / the retry state, for page toolbars.
#[component]
pub fn SaveStatus() -> impl IntoView {
    let saver = use_saver();
    let state = move || {
        if saver
            .problem
            .with(|p| p.as_ref().is_some_and(|p| p.retrying))
        {
            "retrying"
        } else if saver.pending.get() > 0 {
            "saving"
        } else {
            "saved"
        }
    };
    view! {
        <span class="save-status" data-testid="save-status" data-state=state aria-live="polite">
            {move || match state() {
                "retrying" => "Not saved yet, retrying…",
                "saving" => "Saving…",
                _ => "All changes saved",
            }}
        </span>
    }
}

/// The error banner of the save queue, with "Retry now" while retrying (in the shell).
#[component]
pub fn SaveBanner() -> impl IntoView {
    let saver = use_saver();
    view! {
        <Show when=move || saver.problem.with(Option::is_some)>
            <div class="alert error banner" role="alert" data-testid="save-error">
                <span>{move || saver.problem.with(|p| p.as_ref().map(|p| p.message.clone()).unwrap_or_default())}</span>
                <span class="banner-actions">
                    <Show when=move || saver.problem.with(|p| p.as_ref().is_some_and(|p| p.retrying))>
                        <button class="button subtle small" on:click=move |_| saver.retry_now()>
                            "Retry now"
                        </button>
                    </Show>
                    <button
                        class="button subtle small"
                        data-testid="save-error-dismiss"
                        aria-label="Dismiss"
                        on:click=move |_| saver.dismiss()
                    >
                        "Dismiss"
                    </button>
                </span>
            </div>
        </Show>
    }
}
