//! Pieces of the forms: a field's error line, its `aria-invalid`, which error a field shows
//! (its own rule's or the server's), a name input and a number input that show their own
//! errors, and the submit button.

use leptos::prelude::*;

use crate::api::ApiError;
use crate::save::sentence;

/// `aria-invalid` of an input whose current error is `error`.
pub fn invalid(error: Signal<Option<String>>) -> impl Fn() -> &'static str + Copy {
    move || {
        if error.with(Option::is_some) {
            "true"
        } else {
            "false"
        }
    }
}

/// The error line under a field: empty while there is none, announced as it changes.
#[component]
pub fn FieldMessage(
    #[prop(into)] error: Signal<Option<String>>,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <span class="field-message error" data-testid=testid aria-live="polite">
            {move || error.get().unwrap_or_default()}
        </span>
    }
}

/// A labelled number input with its error line. The value stays the text as typed, so that
/// the form can say what is wrong with it.
#[component]
pub fn NumberField(
    label: &'static str,
    /// Muted words after the label.
    #[prop(optional)]
    hint: Option<&'static str>,
    value: RwSignal<String>,
    #[prop(into)] error: Signal<Option<String>>,
    testid: &'static str,
    error_testid: &'static str,
    /// Classes beside `field` on the label (e.g. `count-field` in an inline form).
    #[prop(optional)]
    class: Option<&'static str>,
    min: u32,
    #[prop(optional)] max: Option<u32>,
    /// `any`, or the step between allowed values.
    step: &'static str,
    /// Decimals are fine (phones show a keyboard with a decimal point).
    #[prop(optional)]
    decimal: bool,
    /// Runs after each edit, once `value` holds it.
    #[prop(into)]
    on_input: Callback<()>,
) -> impl IntoView {
    let class = match class {
        Some(c) => format!("field {c}"),
        None => "field".to_owned(),
    };
    view! {
        <label class=class>
            <span>{label} {hint.map(|h| view! { " " <small class="muted">{h}</small> })}</span>
            <input
                type="number"
                min=min
                max=max
                step=step
                inputmode=decimal.then_some("decimal")
                data-testid=testid
                aria-invalid=invalid(error)
                prop:value=move || value.get()
                on:input=move |ev| {
                    value.set(event_target_value(&ev));
                    on_input.run(());
                }
            />
            <FieldMessage error=error testid=error_testid/>
        </label>
    }
}

/// A form's submit button: disabled, and saying `busy`, while the form is being sent.
#[component]
pub fn SubmitButton(
    pending: RwSignal<bool>,
    label: &'static str,
    busy: &'static str,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <button type="submit" class="button primary" data-testid=testid disabled=move || pending.get()>
            {move || if pending.get() { busy } else { label }}
        </button>
    }
}

/// A field's error: the server's when it blamed `field`, else what `local` says.
pub fn field_error(
    error: RwSignal<Option<ApiError>>,
    field: &'static str,
    local: impl FnOnce() -> Option<String>,
) -> Option<String> {
    error
        .with(|e| {
            e.as_ref()
                .filter(|e| e.is_for_field(field))
                .map(|e| e.message.clone())
        })
        .or_else(local)
}

/// The server's error when it blamed none of `fields` (those show their own), as a sentence.
pub fn other_error(
    error: RwSignal<Option<ApiError>>,
    fields: &'static [&'static str],
) -> Signal<Option<String>> {
    Signal::derive(move || {
        error.with(|e| {
            e.as_ref()
                .filter(|e| !fields.iter().any(|f| e.is_for_field(f)))
                .map(|e| sentence(&e.message))
        })
    })
}

/// Clears the server's error when it was about `field` (the user is fixing it).
pub fn clear_field_error(error: RwSignal<Option<ApiError>>, field: &str) {
    if error.with_untracked(|e| e.as_ref().is_some_and(|e| e.is_for_field(field))) {
        error.set(None);
    }
}

/// A labelled name input with its error line: `rule`'s once something is typed (an emptied
/// field is not an error until the form is sent, which sets `touched`), or the server's
/// when it blamed `name`. Typing clears the server's error.
#[component]
pub fn NameField(
    label: &'static str,
    placeholder: &'static str,
    value: RwSignal<String>,
    touched: RwSignal<bool>,
    #[prop(into)] rule: Signal<Option<String>>,
    /// The form's last error from the server.
    error: RwSignal<Option<ApiError>>,
    testid: &'static str,
    error_testid: &'static str,
) -> impl IntoView {
    let shown = Signal::derive(move || {
        field_error(error, "name", || {
            touched.get().then(|| rule.get()).flatten()
        })
    });
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                type="text"
                autocomplete="off"
                spellcheck="false"
                placeholder=placeholder
                data-testid=testid
                aria-invalid=invalid(shown)
                prop:value=move || value.get()
                on:input=move |ev| {
                    let typed = event_target_value(&ev);
                    touched.set(!typed.is_empty());
                    value.set(typed);
                    error.set(None);
                }
            />
            <FieldMessage error=shown testid=error_testid/>
        </label>
    }
}
