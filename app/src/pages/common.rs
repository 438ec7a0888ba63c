//! Pieces several pages share: loading what a `/…/:id` page shows (with the session check
//! and the "no such thing" answer), the frame around it while it loads or when it fails,
//! the breadcrumb, and the alerts and buttons of their sections.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use shared::api::Instance;

use crate::api::{self, ApiError, ApiResult};
use crate::use_session;

/// A route parameter, read with `parse`; `None` when it is missing or does not parse.
fn param<K>(name: &'static str, parse: fn(&str) -> Option<K>) -> Memo<Option<K>>
where
    K: PartialEq + Send + Sync + 'static,
{
    let params = use_params_map();
    Memo::new(move |_| params.with(|p| p.get_str(name).and_then(parse)))
}

/// Loads what a `/…/:id` page shows with `load`, again whenever the id changes. An id that
/// is not a number is answered "There is no such {what}."; every error goes through
/// [`crate::Session::checked`].
pub fn load_by_id<T, Fut>(
    what: &'static str,
    load: impl Fn(i64) -> Fut + 'static,
) -> LocalResource<ApiResult<T>>
where
    T: 'static,
    Fut: Future<Output = ApiResult<T>> + 'static,
{
    load_by_param(param("id", |s| s.parse::<i64>().ok()), what, load)
}

/// [`load_by_id`] for a `/…/:name` page.
pub fn load_by_name<T, Fut>(
    what: &'static str,
    load: impl Fn(String) -> Fut + 'static,
) -> LocalResource<ApiResult<T>>
where
    T: 'static,
    Fut: Future<Output = ApiResult<T>> + 'static,
{
    load_by_param(param("name", |s| Some(s.to_owned())), what, load)
}

fn load_by_param<K, T, Fut>(
    key: Memo<Option<K>>,
    what: &'static str,
    load: impl Fn(K) -> Fut + 'static,
) -> LocalResource<ApiResult<T>>
where
    K: Clone + PartialEq + Send + Sync + 'static,
    T: 'static,
    Fut: Future<Output = ApiResult<T>> + 'static,
{
    let session = use_session();
    LocalResource::new(move || {
        let loading = key.get().map(&load);
        session.checked(async move {
            match loading {
                Some(loading) => loading.await,
                None => Err(ApiError::new(
                    404,
                    "not_found",
                    &format!("There is no such {what}."),
                )),
            }
        })
    })
}

/// `item` and the instance it belongs to (for the breadcrumb, and the type).
pub async fn with_instance<T>(
    item: impl Future<Output = ApiResult<T>>,
    instance_id: impl FnOnce(&T) -> i64,
) -> ApiResult<(T, Instance)> {
    let item = item.await?;
    let instance = api::get_instance(instance_id(&item)).await?;
    Ok((item, instance))
}

/// The frame of a `/…/:id` page: "Loading…", then `show` with what `data` loaded, or the
/// load error (see [`load_error`]).
pub fn page_by_id<T, V>(
    testid: &'static str,
    error_testid: &'static str,
    data: LocalResource<ApiResult<T>>,
    show: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    view! {
        <section class="page" data-testid=testid>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    data.get()
                        .map(|result| match result {
                            Ok(item) => show(item).into_any(),
                            Err(e) => load_error(e.message, error_testid).into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

/// Why a page could not load, under a link back to the instances.
pub fn load_error(message: String, testid: &'static str) -> impl IntoView {
    view! {
        <nav class="breadcrumb"><A href="/">"Instances"</A></nav>
        {error_alert(message, testid)}
    }
}

/// A load error as an alert.
pub fn error_alert(message: String, testid: &'static str) -> impl IntoView {
    view! { <div class="alert error" role="alert" data-testid=testid>{message}</div> }
}

/// What a list section shows once its list has loaded: `empty` when there is nothing in
/// it, `items` otherwise, or the load error as an alert with `error_testid`.
pub fn list_or_empty<T, E, I>(
    result: ApiResult<Vec<T>>,
    error_testid: &'static str,
    empty: impl FnOnce() -> E,
    items: impl FnOnce(Vec<T>) -> I,
) -> AnyView
where
    E: IntoView + 'static,
    I: IntoView + 'static,
{
    match result {
        Ok(list) if list.is_empty() => empty().into_any(),
        Ok(list) => items(list).into_any(),
        Err(e) => error_alert(e.message, error_testid).into_any(),
    }
}

/// The error of the page's last action (delete, stop, …) while there is one.
#[component]
pub fn ErrorNotice(
    #[prop(into)] error: Signal<Option<String>>,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <Show when=move || error.with(Option::is_some)>
            <p class="alert error" role="alert" data-testid=testid>
                {move || error.get().unwrap_or_default()}
            </p>
        </Show>
    }
}

/// The button that opens a section's form; hidden while the form is open.
#[component]
pub fn OpenFormButton(
    open: RwSignal<bool>,
    testid: &'static str,
    label: &'static str,
) -> impl IntoView {
    view! {
        <Show when=move || !open.get()>
            <button class="button primary" data-testid=testid on:click=move |_| open.set(true)>
                {label}
            </button>
        </Show>
    }
}

/// The breadcrumb of a page inside an instance: "Instances / <instance> / ", and the dataset
/// after it on the pages inside one of its datasets.
#[component]
pub fn Breadcrumb(
    instance_id: i64,
    instance_name: String,
    #[prop(optional)] dataset: Option<(i64, String)>,
) -> impl IntoView {
    view! {
        <nav class="breadcrumb" aria-label="Breadcrumb">
            <A href="/">"Instances"</A>
            <span aria-hidden="true">" / "</span>
            <A href=format!("/instances/{instance_id}")>{instance_name}</A>
            <span aria-hidden="true">" / "</span>
            {dataset
                .map(|(id, name)| {
                    view! {
                        <A href=format!("/datasets/{id}")>{name}</A>
                        <span aria-hidden="true">" / "</span>
                    }
                })}
        </nav>
    }
}

/// The chosen file of an `<input type=file>`.
pub fn chosen_file(ev: &leptos::ev::Event) -> Option<web_sys::File> {
    let input: web_sys::HtmlInputElement = event_target(ev);
    input.files().and_then(|list| list.get(0))
}

/// The bytes of a chosen file.
pub async fn read_bytes(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = wasm_bindgen_futures::JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| format!("Could not read {}.", file.name()))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Asks `question` in the browser's confirm dialog; `false` when it cannot ask.
pub fn confirm(question: &str) -> bool {
    window().confirm_with_message(question).unwrap_or(false)
}
