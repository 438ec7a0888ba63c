//! Experience and publish (`/models/:id/publish`, SPEC §6): the model's name, creation time
//! and metrics as key/value pairs, and a QR code of a preview link. Scanning it on a phone
//! opens `/p/<token>`, which runs the model on the phone's camera with no login. Links are
//! signed, expire (default 24 h) and can be revoked here.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use shared::api::Instance;
use shared::preview::{CreatePreviewLink, MAX_EXPIRES_HOURS, PreviewLink};
use shared::train::ModelVersion;

use crate::api;
use crate::format;
use crate::pages::common::{Breadcrumb, ErrorNotice, page_by_id};
use crate::pages::deploy::CopyButton;
use crate::pages::model::load_model;
use crate::save::sentence;
use crate::use_session;

#[component]
pub fn PublishPage() -> impl IntoView {
    let data = load_model();
    page_by_id(
        "publish-page",
        "publish-error",
        data,
        |(model, instance)| {
            view! { <PublishView model=model instance=instance/> }
        },
    )
}

/// The hours typed in the expiry field, if they are a valid lifetime.
fn parse_hours(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(h) if h > 0.0 && h <= MAX_EXPIRES_HOURS => Ok(h),
        _ => Err(format!(
            "Enter the hours the link works, above 0 and at most {MAX_EXPIRES_HOURS} (30 days)."
        )),
    }
}

#[component]
fn PublishView(model: ModelVersion, instance: Instance) -> impl IntoView {
    let session = use_session();
    let id = model.id;
    let links = RwSignal::new(Vec::<PreviewLink>::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let hours = RwSignal::new("24".to_owned());

    spawn_local(async move {
        match api::list_preview_links(id).await {
            Ok(l) => links.set(l),
            Err(e) => {
                session.check(&e);
                error.set(Some(sentence(&e.message)));
            }
        }
    });

    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let h = match parse_hours(&hours.get_untracked()) {
            Ok(h) => h,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let body = CreatePreviewLink {
                expires_in_hours: Some(h),
            };
            match api::create_preview_link(id, &body).await {
                Ok(link) => links.update(|l| l.insert(0, link)),
                Err(e) => {
                    session.check(&e);
                    error.set(Some(sentence(&e.message)));
                }
            }
            busy.set(false);
        });
    };
    let revoke = move |link_id: i64| {
        error.set(None);
        spawn_local(async move {
            match api::revoke_preview_link(link_id).await {
                Ok(()) => links.update(|l| {
                    if let Some(x) = l.iter_mut().find(|x| x.id == link_id) {
                        x.revoked = true;
                    }
                }),
                Err(e) => {
                    session.check(&e);
                    error.set(Some(sentence(&e.message)));
                }
            }
        });
    };
    let current = move || links.get().into_iter().find(|l| !l.revoked && !l.expired);

    let mut metrics: Vec<(String, String)> = model
        .metrics
        .summary()
        .into_iter()
        .map(|(k, v)| {
            let shown = match k.as_str() {
                "model_size" => format::bytes(v as u64),
                k if k.ends_with("loss") => format!("{v:.4}"),
                "conf_threshold" => format!("{v:.2}"),
                _ => format::percent(v),
            };
            (k, shown)
        })
        .collect();
    metrics.push((
        "validation_images".into(),
        model.metrics.validation_images().to_string(),
    ));
    let title = format!("{} v{}", instance.name, model.version);

    view! {
        <Breadcrumb instance_id=instance.id instance_name=instance.name.clone()/>
        <div class="page-head">
            <div>
                <h1 data-testid="publish-title">"Experience and publish"</h1>
                <span class="muted">"Open the model on a phone: scan the code, point the camera."</span>
            </div>
            <div class="head-actions">
                <A href=format!("/models/{id}/try") attr:class="button subtle" attr:data-testid="publish-try">
                    "Try here"
                </A>
                <A href=format!("/models/{id}") attr:class="button subtle">"Model page"</A>
            </div>
        </div>
        <div class="publish-grid">
            <section class="section panel">
                <h2 data-testid="publish-model-name">{title}</h2>
                <table class="table kv" data-testid="publish-facts">
                    <tbody>
                        <tr>
                            <th scope="row">"Created"</th>
                            <td>
                                <time datetime=model.created_at.clone()>{format::timestamp(&model.created_at)}</time>
                            </td>
                        </tr>
                        <tr>
                            <th scope="row">"Labels"</th>
                            <td>{model.labels.join(", ")}</td>
                        </tr>
                        {metrics
                            .into_iter()
                            .map(|(k, v)| {
                                let key = k.clone();
                                view! {
                                    <tr data-testid="publish-metric" data-key=key>
                                        <th scope="row">{k}</th>
                                        <td>{v}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            </section>
            <section class="section panel qr-panel">
                {move || match current() {
                    Some(link) => {
                        let url = link.url.clone();
                        view! {
                            <div class="qr" data-testid="publish-qr" inner_html=link.qr_svg.clone()></div>
                            <p class="small">
                                <a href=url.clone() data-testid="publish-link" target="_blank" rel="noopener">{url.clone()}</a>
                            </p>
                            <CopyButton text=url label="Copy link" testid="publish-copy"/>
                            <p class="muted small" data-testid="publish-expires">
                                {format!("Works until {}.", format::timestamp(&link.expires_at))}
                            </p>
                        }
                            .into_any()
                    }
                    None => {
                        view! {
                            <p class="muted" data-testid="publish-no-link">
                                "No working preview link yet. Make one: anyone holding it can run this model (and only this model) until it expires or you revoke it."
                            </p>
                        }
                            .into_any()
                    }
                }}
                <form class="inline-form" on:submit=create>
                    <label>
                        "Expires after (hours) "
                        <input
                            type="number"
                            min="0.01"
                            step="any"
                            max=MAX_EXPIRES_HOURS.to_string()
                            data-testid="publish-hours"
                            prop:value=move || hours.get()
                            on:input=move |ev| hours.set(event_target_value(&ev))
                        />
                    </label>
                    <button class="button" type="submit" data-testid="publish-create" disabled=move || busy.get()>
                        "New preview link"
                    </button>
                </form>
                <ErrorNotice error=error testid="publish-action-error"/>
                <p class="muted small">
                    "Phones need to reach this server; the camera and WebGPU need HTTPS (set AUTOLEARN_PUBLIC_URL behind a TLS proxy)."
                </p>
            </section>
        </div>
        <section class="section">
            <h2>"Links"</h2>
            <table class="table" data-testid="publish-links">
                <thead>
                    <tr>
                        <th>"Created"</th>
                        <th>"Expires"</th>
                        <th>"State"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || links.get()
                        key=|l| (l.id, l.revoked)
                        children=move |link| {
                            let state = if link.revoked {
                                "revoked"
                            } else if link.expired {
                                "expired"
                            } else {
                                "active"
                            };
                            let link_id = link.id;
                            view! {
                                <tr data-testid="publish-link-row" data-id=link_id.to_string()>
                                    <td>{format::timestamp(&link.created_at)}</td>
                                    <td>{format::timestamp(&link.expires_at)}</td>
                                    <td data-testid="publish-link-state">{state}</td>
                                    <td>
                                        {(state == "active")
                                            .then(|| {
                                                view! {
                                                    <button
                                                        class="button subtle small"
                                                        data-testid="publish-revoke"
                                                        on:click=move |_| revoke(link_id)
                                                    >
                                                        "Revoke"
                                                    </button>
                                                }
                                            })}
                                    </td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_hours_must_be_a_valid_lifetime() {
        assert_eq!(parse_hours(" 24 "), Ok(24.0));
        assert_eq!(parse_hours("0.5"), Ok(0.5));
        for bad in ["0", "-1", "721", "abc", ""] {
            assert!(parse_hours(bad).is_err(), "{bad}");
        }
    }
}
