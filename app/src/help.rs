//! Keyboard shortcuts: the help overlay opened with `?` (or the header's `?` button), and
//! helpers for page-level key handlers.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// Which page's shortcuts the overlay lists first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelpTopic {
    General,
    Classification,
    Detection,
    Ocr,
}

/// Shared by the shell and the pages through context.
#[derive(Clone, Copy)]
pub struct Help {
    pub open: RwSignal<bool>,
    pub topic: RwSignal<HelpTopic>,
}

pub fn use_help() -> Help {
    expect_context::<Help>()
}

/// Sets the help topic while the calling component lives.
pub fn help_topic(topic: HelpTopic) {
    let help = use_help();
    help.topic.set(topic);
    on_cleanup(move || help.topic.set(HelpTopic::General));
}

/// Whether a key event belongs to a text field (or a select, or an editable element), where
/// letters and digits are text, not shortcuts.
pub fn typing(ev: &web_sys::KeyboardEvent) -> bool {
    let Some(target) = ev.target() else {
        return false;
    };
    let Ok(el) = target.dyn_into::<web_sys::HtmlElement>() else {
        return false;
    };
    let tag = el.tag_name();
    if tag.eq_ignore_ascii_case("textarea") || tag.eq_ignore_ascii_case("select") {
        return true;
    }
    if tag.eq_ignore_ascii_case("input") {
        // Buttons and checkboxes take no text.
        let kind = el
            .get_attribute("type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        return !matches!(
            kind.as_str(),
            "button" | "submit" | "checkbox" | "radio" | "range"
        );
    }
    el.is_content_editable()
}

/// Gives the keyboard back to the page's shortcuts after a `<select>` was used (a focused
/// select would take the arrow and letter keys).
pub fn release_focus(ev: &web_sys::Event) {
    if let Some(el) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.blur();
    }
}

/// A shortcut modifier is held (Ctrl, ⌘ or Alt): leave the key to the browser unless a
/// handler wants exactly that combination.
pub fn modified(ev: &web_sys::KeyboardEvent) -> bool {
    ev.ctrl_key() || ev.meta_key() || ev.alt_key()
}

type Section = (&'static str, &'static [(&'static str, &'static str)]);

const GENERAL: Section = (
    "Everywhere",
    &[
        ("?", "Show or hide this help"),
        ("Esc", "Close this help, cancel"),
    ],
);

const CLASSIFICATION: Section = (
    "Classification labelling",
    &[
        ("Click", "Select an image"),
        ("Shift + click", "Select a range"),
        ("Ctrl/⌘ + click", "Add to or remove from the selection"),
        ("Ctrl/⌘ + A", "Select the whole page"),
        ("1 – 9", "Give the selected images tag 1–9"),
        ("0", "Remove the tag of the selected images"),
        (
            "Enter",
            "Accept the suggested tag of the selected images (suggestions on)",
        ),
        (
            "S",
            "Skip the selected images (they leave the dataset; restorable)",
        ),
        ("→ / D / PgDn", "Next page"),
        ("← / A / PgUp", "Previous page"),
        ("P", "Preview the result"),
        ("Esc", "Clear the selection"),
    ],
);

const BOXES: Section = (
    "Box labelling (detection)",
    &[
        (
            "Drag",
            "Draw a box (on an empty spot; Shift + drag draws anywhere)",
        ),
        ("Drag a box", "Move it"),
        ("Drag a handle", "Resize the selected box"),
        ("Click", "Select a box"),
        ("1 – 9", "Label of the selected box and of new boxes"),
        ("Delete / Backspace", "Delete the selected box"),
        ("R", "Repeat the previous image's boxes"),
        (
            "Click a dashed draft, E",
            "Accept a suggested box (E: the most confident)",
        ),
        ("Q", "Reject the most confident draft"),
        ("Enter", "Accept every draft shown, drop the rest"),
        ("X", "Reject every draft of this image"),
        ("D / →", "Next image"),
        ("A / ←", "Previous image"),
        ("Wheel", "Zoom at the pointer"),
        ("Space + drag, middle drag", "Pan"),
        ("H", "Hand tool: every drag pans (on touch screens too)"),
        ("F / 0", "Fit the image"),
        ("Tab / Shift + Tab", "Select the next / previous box"),
        ("Ctrl/⌘ + Z, Ctrl/⌘ + Shift + Z", "Undo, redo"),
        ("Esc", "Deselect, cancel a drag"),
    ],
);

const OCR: Section = (
    "Text labelling (OCR)",
    &[
        ("Drag", "Draw a text box; its text field opens for typing"),
        ("Enter", "Done typing: back to the shortcuts"),
        ("Other keys", "As in box labelling (without labels 1–9)"),
    ],
);

/// The overlay itself, rendered once by the shell.
#[component]
pub fn HelpOverlay() -> impl IntoView {
    let help = use_help();
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "?" && !typing(&ev) && !ev.ctrl_key() && !ev.meta_key() {
            ev.prevent_default();
            help.open.update(|o| *o = !*o);
        } else if ev.key() == "Escape" && help.open.get_untracked() {
            ev.prevent_default();
            ev.stop_immediate_propagation();
            help.open.set(false);
        }
    });
    on_cleanup(move || handle.remove());

    let sections = move || {
        let first: &[Section] = match help.topic.get() {
            HelpTopic::General => &[],
            HelpTopic::Classification => &[CLASSIFICATION],
            HelpTopic::Detection => &[BOXES],
            HelpTopic::Ocr => &[OCR, BOXES],
        };
        let mut all: Vec<Section> = first.to_vec();
        all.push(GENERAL);
        for s in [CLASSIFICATION, BOXES, OCR] {
            if !all.iter().any(|a| a.0 == s.0) {
                all.push(s);
            }
        }
        all
    };

    view! {
        <Show when=move || help.open.get()>
            <div class="overlay" on:click=move |_| help.open.set(false)>
                <div
                    class="dialog help"
                    role="dialog"
                    aria-modal="true"
                    aria-labelledby="help-title"
                    data-testid="help-overlay"
                    on:click=|ev| ev.stop_propagation()
                >
                    <div class="dialog-head">
                        <h2 id="help-title">"Keyboard shortcuts"</h2>
                        <button
                            class="button subtle small"
                            data-testid="help-close"
                            on:click=move |_| help.open.set(false)
                        >
                            "Close"
                        </button>
                    </div>
                    <div class="help-sections">
                        {move || {
                            sections()
                                .into_iter()
                                .map(|(title, keys)| {
                                    view! {
                                        <section>
                                            <h3>{title}</h3>
                                            <dl class="keys">
                                                {keys
                                                    .iter()
                                                    .map(|(k, what)| {
                                                        view! {
                                                            <div>
                                                                <dt><kbd>{*k}</kbd></dt>
                                                                <dd>{*what}</dd>
                                                            </div>
                                                        }
                                                    })
                                                    .collect_view()}
                                            </dl>
                                        </section>
                                    }
                                })
                                .collect_view()
                        }}
                    </div>
                </div>
            </div>
        </Show>
    }
}
