//! Pieces of the forms: a field's error line, its `aria-invalid`, and a number input that
//! shows its own error.

use leptos::prelude::*;

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
    view! {
        <label class="field">
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
