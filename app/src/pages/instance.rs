//! One instance. For now its facts; datasets, labelling and training pages hang off here
//! (`/instances/:id/...`).

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use shared::api::Instance;

use crate::api::{self, ApiError};
use crate::{format, use_session};

#[component]
pub fn InstancePage() -> impl IntoView {
    let session = use_session();
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").and_then(|s| s.parse::<i64>().ok())));
    let instance = LocalResource::new(move || {
        let id = id.get();
        async move {
            let Some(id) = id else {
                return Err(ApiError::new(
                    404,
                    "not_found",
                    "There is no such instance.",
                ));
            };
            let result = api::get_instance(id).await;
            if let Err(e) = &result {
                session.check(e);
            }
            result
        }
    });

    view! {
        <section class="page" data-testid="instance-page">
            <nav class="breadcrumb" aria-label="Breadcrumb">
                <A href="/">"Instances"</A>
                <span aria-hidden="true">" / "</span>
            </nav>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || {
                    instance
                        .get()
                        .map(|result| match result {
                            Ok(i) => view! { <InstanceDetails instance=i/> }.into_any(),
                            Err(e) => {
                                view! {
                                    <div class="alert error" role="alert" data-testid="instance-error">
                                        {e.message}
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
fn InstanceDetails(instance: Instance) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let deleting = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let id = instance.id;
    let name = instance.name.clone();

    let delete = move |_| {
        let confirmed = window()
            .confirm_with_message(&format!(
                "Delete instance \u{201c}{name}\u{201d} and everything in it?"
            ))
            .unwrap_or(false);
        if !confirmed {
            return;
        }
        deleting.set(true);
        error.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::delete_instance(id).await {
                Ok(()) => navigate("/", Default::default()),
                Err(e) => {
                    session.check(&e);
                    deleting.set(false);
                    error.set(Some(e.message));
                }
            }
        });
    };

    view! {
        <div class="page-head">
            <div>
                <h1 data-testid="instance-name">{instance.name.clone()}</h1>
                <span class="badge" data-testid="instance-type" data-type=instance.kind.as_str()>
                    {instance.kind.title()}
                </span>
            </div>
            <button
                class="button danger"
                data-testid="delete-instance"
                on:click=delete
                disabled=move || deleting.get()
            >
                "Delete"
            </button>
        </div>
        <Show when=move || error.get().is_some()>
            <p class="alert error" role="alert" data-testid="delete-error">
                {move || error.get().unwrap_or_default()}
            </p>
        </Show>
        {(!instance.description.is_empty())
            .then(|| view! { <p class="description" data-testid="instance-description">{instance.description.clone()}</p> })}
        <dl class="facts panel">
            <div>
                <dt>"Datasets"</dt>
                <dd data-testid="instance-datasets">{instance.dataset_count}</dd>
            </div>
            <div>
                <dt>"Images"</dt>
                <dd data-testid="instance-images">{instance.image_count}</dd>
            </div>
            <div>
                <dt>"Created"</dt>
                <dd>
                    <time datetime=instance.created_at.clone()>
                        {format::timestamp(&instance.created_at)}
                    </time>
                </dd>
            </div>
        </dl>
    }
}
