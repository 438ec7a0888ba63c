//! The home page: the user's instances and the form that creates one.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::InstanceType;
use shared::api::{CreateInstance, Instance};
use shared::names::validate_instance_name;

use crate::api::{self, ApiError};
use crate::pages::common::{ErrorNotice, OpenFormButton};
use crate::save::sentence;
use crate::{format, use_session};

#[component]
pub fn InstancesPage() -> impl IntoView {
    let session = use_session();
    let instances = LocalResource::new(move || session.checked(api::list_instances()));
    let show_form = RwSignal::new(false);
    let created = RwSignal::new(None::<i64>);

    let on_created = Callback::new(move |instance: Instance| {
        show_form.set(false);
        created.set(Some(instance.id));
        instances.refetch();
    });
    let on_cancel = Callback::new(move |()| show_form.set(false));

    // The demo: the server generates and indexes the images, then the new instance opens.
    let navigate = use_navigate();
    let demo_pending = RwSignal::new(false);
    let demo_error = RwSignal::new(None::<String>);
    let create_demo = move |template: &'static str| {
        demo_pending.set(true);
        demo_error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::create_from_template(template).await {
                Ok(instance) => {
                    navigate(&format!("/instances/{}", instance.id), Default::default())
                }
                Err(e) => {
                    session.check(&e);
                    demo_error.set(Some(sentence(&e.message)));
                    demo_pending.set(false);
                }
            }
        });
    };

    view! {
        <section class="page" data-testid="instances-page">
            <div class="page-head">
                <div>
                    <h1>"Instances"</h1>
                    <p class="muted">
                        "An instance holds the datasets, training tasks, models and services of one scenario."
                    </p>
                </div>
                <div class="head-actions">
                    <button
                        class="button subtle"
                        data-testid="create-demo"
                        title="An image classification instance with generated circles, squares and triangles, ready to train"
                        on:click={
                            let create_demo = create_demo.clone();
                            move |_| create_demo("shapes")
                        }
                        disabled=move || demo_pending.get()
                    >
                        {move || if demo_pending.get() { "Creating demo…" } else { "Create demo (shapes)" }}
                    </button>
                    <button
                        class="button subtle"
                        data-testid="create-demo-scenes"
                        title="An object detection instance with generated scenes of shapes and their boxes, ready to train"
                        on:click={
                            let create_demo = create_demo.clone();
                            move |_| create_demo("scenes")
                        }
                        disabled=move || demo_pending.get()
                    >
                        "Create demo (detection)"
                    </button>
                    <button
                        class="button subtle"
                        data-testid="create-demo-signs"
                        title="An OCR instance with generated signs of text lines and their boxes, ready to train"
                        on:click=move |_| create_demo("signs")
                        disabled=move || demo_pending.get()
                    >
                        "Create demo (OCR)"
                    </button>
                    <OpenFormButton open=show_form testid="new-instance" label="New instance"/>
                </div>
            </div>
            <ErrorNotice error=demo_error testid="demo-error"/>
            <Show when=move || show_form.get()>
                <CreateInstanceForm on_created=on_created on_cancel=on_cancel/>
            </Show>
            <Transition fallback=|| {
                view! { <p class="muted" data-testid="instances-loading">"Loading instances…"</p> }
            }>
                {move || {
                    instances
                        .get()
                        .map(|result| match result {
                            Ok(list) if list.is_empty() => {
                                view! {
                                    <div class="empty" data-testid="instances-empty">
                                        <p>"No instances yet."</p>
                                        <p class="muted">
                                            "Create one for image classification, object detection, OCR or recommendation recall."
                                        </p>
                                    </div>
                                }
                                    .into_any()
                            }
                            Ok(list) => {
                                view! {
                                    <ul class="instance-list" data-testid="instance-list">
                                        {list
                                            .into_iter()
                                            .map(|i| {
                                                let fresh = created.get_untracked() == Some(i.id);
                                                view! { <InstanceRow instance=i fresh=fresh/> }
                                            })
                                            .collect_view()}
                                    </ul>
                                }
                                    .into_any()
                            }
                            Err(e) => {
                                view! {
                                    <div class="alert error" role="alert" data-testid="instances-error">
                                        <span>{e.message}</span>
                                        <button
                                            class="button subtle"
                                            on:click=move |_| instances.refetch()
                                        >
                                            "Try again"
                                        </button>
                                    </div>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn InstanceRow(instance: Instance, fresh: bool) -> impl IntoView {
    let href = format!("/instances/{}", instance.id);
    let created = format::timestamp(&instance.created_at);
    let description = (!instance.description.is_empty()).then_some(instance.description);
    let name = instance.name;
    let data_name = name.clone();
    view! {
        <li
            class="instance-row"
            class:fresh=fresh
            data-testid="instance-row"
            data-instance-id=instance.id
            data-name=data_name
        >
            <div class="row-main">
                <A href=href attr:class="row-name" attr:data-testid="row-name">
                    {name}
                </A>
                <span class="badge" data-testid="row-type" data-type=instance.kind.as_str()>
                    {instance.kind.title()}
                </span>
            </div>
            {description.map(|d| view! { <p class="row-description muted">{d}</p> })}
            <div class="row-facts muted">
                <span data-testid="row-images">
                    {format::count(instance.image_count, "image", "images")}
                </span>
                <span data-testid="row-datasets">
                    {format::count(instance.dataset_count, "dataset", "datasets")}
                </span>
                <span>
                    "Created "
                    <time datetime=instance.created_at data-testid="row-created">
                        {created}
                    </time>
                </span>
            </div>
        </li>
    }
}

/// Creates an instance. The name is checked as it is typed with the same rule the server
/// applies (`shared::names`), so both say the same thing; server refusals are shown too.
#[component]
fn CreateInstanceForm(on_created: Callback<Instance>, on_cancel: Callback<()>) -> impl IntoView {
    let session = use_session();
    let kind = RwSignal::new(InstanceType::ImageClassification);
    let name = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    // The rule is shown once the user has typed (or tried to submit), not on an empty form.
    let touched = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let server_error = RwSignal::new(None::<ApiError>);

    let rule_error = Memo::new(move |_| {
        name.with(|n| {
            validate_instance_name(kind.get(), n)
                .err()
                .map(|e| e.to_string())
        })
    });
    let shown_rule = move || {
        if touched.get() {
            rule_error.get()
        } else {
            None
        }
    };
    let name_invalid = move || {
        shown_rule().is_some()
            || server_error.with(|e| e.as_ref().is_some_and(|e| e.is_for_field("name")))
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if pending.get_untracked() || rule_error.get_untracked().is_some() {
            return;
        }
        let body = CreateInstance {
            kind: kind.get_untracked(),
            name: name.get_untracked(),
            description: description.get_untracked().trim().to_owned(),
        };
        pending.set(true);
        server_error.set(None);
        spawn_local(async move {
            let result = api::create_instance(body).await;
            pending.set(false);
            match result {
                Ok(instance) => on_created.run(instance),
                Err(e) => {
                    session.check(&e);
                    server_error.set(Some(e));
                }
            }
        });
    };

    view! {
        <form class="panel create-form" on:submit=submit novalidate=true data-testid="create-form">
            <h2>"New instance"</h2>
            <div class="form-grid">
                <label class="field">
                    <span>"Type"</span>
                    <select
                        data-testid="create-type"
                        on:change=move |ev| {
                            if let Some(t) = InstanceType::parse(&event_target_value(&ev)) {
                                kind.set(t);
                                server_error.set(None);
                            }
                        }
                    >
                        {InstanceType::ALL
                            .into_iter()
                            .map(|t| {
                                view! {
                                    <option value=t.as_str() selected=move || kind.get() == t>
                                        {t.title()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"Name"</span>
                    <input
                        type="text"
                        name="name"
                        autocomplete="off"
                        spellcheck="false"
                        data-testid="create-name"
                        aria-invalid=move || if name_invalid() { "true" } else { "false" }
                        aria-describedby="name-rule"
                        prop:value=move || name.get()
                        on:input=move |ev| {
                            name.set(event_target_value(&ev));
                            touched.set(true);
                            server_error.set(None);
                        }
                    />
                    <span
                        id="name-rule"
                        class="field-message error"
                        data-testid="name-rule"
                        aria-live="polite"
                    >
                        {move || shown_rule().unwrap_or_default()}
                    </span>
                </label>
            </div>
            <label class="field">
                <span>"Description " <small class="muted">"(optional)"</small></span>
                <textarea
                    rows="2"
                    data-testid="create-description"
                    prop:value=move || description.get()
                    on:input=move |ev| description.set(event_target_value(&ev))
                ></textarea>
            </label>
            <Show when=move || server_error.with(Option::is_some)>
                <p class="alert error" role="alert" data-testid="create-error">
                    {move || server_error.with(|e| e.as_ref().map(|e| e.message.clone()).unwrap_or_default())}
                </p>
            </Show>
            <div class="actions">
                <button
                    type="submit"
                    class="button primary"
                    data-testid="create-submit"
                    disabled=move || pending.get()
                >
                    {move || if pending.get() { "Creating…" } else { "Create" }}
                </button>
                <button
                    type="button"
                    class="button subtle"
                    data-testid="create-cancel"
                    on:click=move |_| on_cancel.run(())
                >
                    "Cancel"
                </button>
            </div>
        </form>
    }
}
