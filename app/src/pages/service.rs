//! One service (`/services/:name`): its facts and status (asked again every two seconds
//! while its model loads), a curl line to call it, Undeploy and, for a predict service,
//! switching the version it serves (and its replicas) and a "Try it" box that sends an
//! image with the token and shows the answer.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::api::Instance;
use shared::predict::PredictFailure;
use shared::recall::Service;
use shared::train::ModelVersion;

use crate::api::{self, ApiError, ApiResult, PredictAnswer, UpdateService};
use crate::form::{
    FieldMessage, SubmitButton, clear_field_error, field_error, invalid, other_error,
};
use crate::pages::common::{
    Breadcrumb, ErrorNotice, chosen_file, load_by_name, page_by_id, read_bytes, with_instance,
};
use crate::pages::deploy::{
    CopyButton, MAX_PREDICT_REPLICAS, ReplicasField, STATUS_POLL_MS, ServiceState, curl_line,
    model_title, parse_replicas, service_url, state_badge, undeploy,
};
use crate::save::sentence;
use crate::timers::{alive_flag, sleep};
use crate::{base64, format, use_session};

/// The largest image "Try it" sends (its base64 stays well under the endpoint's limit).
const MAX_IMAGE_BYTES: f64 = 16.0 * 1024.0 * 1024.0;

#[component]
pub fn ServicePage() -> impl IntoView {
    let data = load_by_name("service", |name| async move {
        with_instance(api::get_service(&name), |s| s.instance_id).await
    });
    page_by_id(
        "service-page",
        "service-error",
        data,
        |(service, instance)| {
            view! { <ServiceView service=service instance=instance/> }
        },
    )
}

#[component]
fn ServiceView(service: Service, instance: Instance) -> impl IntoView {
    let session = use_session();
    let navigate = use_navigate();
    let instance_id = instance.id;
    let name = service.name.clone();
    let kind = service.kind.clone();
    let predict = service.kind == "predict";
    let created_at = service.created_at.clone();
    let svc = RwSignal::new(service);
    let state = Memo::new(move |_| svc.with(ServiceState::of));
    let error = RwSignal::new(None::<String>);
    let models = LocalResource::new(move || async move {
        if predict {
            session.checked(api::list_models(instance_id)).await
        } else {
            Ok(Vec::new())
        }
    });
    let versions = Signal::derive(move || {
        models
            .get()
            .and_then(Result::ok)
            .map(|list| {
                list.iter()
                    .map(|m| (m.id, m.version))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default()
    });

    // While the model loads, ask again now and then (after a switch too).
    let alive = alive_flag();
    let polled = name.clone();
    spawn_local(async move {
        loop {
            sleep(STATUS_POLL_MS).await;
            if !alive.load(Ordering::Relaxed) {
                return;
            }
            if state.try_get_untracked() != Some(ServiceState::Loading) {
                continue;
            }
            match api::get_service(&polled).await {
                Ok(s) => {
                    svc.try_set(s);
                }
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(sentence(&e.message)));
                }
            }
        }
    });

    let undeploy_name = name.clone();
    let remove = move |_| {
        let navigate = navigate.clone();
        undeploy(session, undeploy_name.clone(), error, move || {
            navigate(&format!("/instances/{instance_id}"), Default::default());
        });
    };
    let curl = Signal::derive(move || svc.with(|s| curl_line(s, "<token>", "")));

    view! {
        <Breadcrumb instance_id=instance_id instance_name=instance.name.clone()/>
        <div class="page-head">
            <div>
                <h1 data-testid="service-title">{name}</h1>
                <span class="badge" data-testid="service-kind">{kind}</span>
            </div>
            <div class="head-actions">
                <button class="button danger" data-testid="service-undeploy" on:click=remove>
                    "Undeploy"
                </button>
            </div>
        </div>
        <ErrorNotice error=error testid="service-action-error"/>
        <dl class="facts panel model-facts" data-testid="service-facts">
            <div>
                <dt>"Status"</dt>
                <dd>{move || state_badge(state.get())}</dd>
            </div>
            {predict
                .then(|| {
                    view! {
                        <div>
                            <dt>"Model version"</dt>
                            <dd>
                                {move || {
                                    svc.with(|s| s.model_id)
                                        .map(|m| {
                                            view! {
                                                <A href=format!("/models/{m}") attr:data-testid="service-model-link">
                                                    {model_title(versions, m)}
                                                </A>
                                            }
                                        })
                                }}
                            </dd>
                        </div>
                    }
                })}
            <div>
                <dt>"Replicas"</dt>
                <dd data-testid="service-replicas-shown">{move || svc.with(|s| s.replicas)}</dd>
            </div>
            <div>
                <dt>"Endpoint"</dt>
                <dd data-testid="service-endpoint-url">{move || svc.with(service_url)}</dd>
            </div>
            <div>
                <dt>"Deployed"</dt>
                <dd>
                    <time datetime=created_at.clone()>{format::timestamp(&created_at)}</time>
                </dd>
            </div>
        </dl>
        {move || match state.get() {
            ServiceState::Failed(reason) => {
                Some(
                    view! {
                        <p class="alert error" role="alert" data-testid="service-failed">
                            {format!("The model could not be loaded: {}", sentence(&reason))}
                        </p>
                    },
                )
            }
            _ => None,
        }}
        <section class="section">
            <h2>"Call it"</h2>
            <div class="panel">
                <p class="muted small">
                    "The token was shown once, when the service was deployed: put it in place of "
                    <code>"<token>"</code>"."
                </p>
                <pre class="json curl" data-testid="service-curl">{curl}</pre>
                <div class="actions call-actions">
                    <CopyButton text=curl label="Copy curl line" testid="service-copy"/>
                </div>
            </div>
        </section>
        {predict
            .then(|| {
                view! {
                    <SwitchForm svc=svc models=models/>
                    <TryIt svc=svc/>
                }
            })}
    }
}

/// Serve another version of the instance, or change the replicas.
#[component]
fn SwitchForm(
    svc: RwSignal<Service>,
    models: LocalResource<ApiResult<Vec<ModelVersion>>>,
) -> impl IntoView {
    let session = use_session();
    let (model, replicas) = svc.with_untracked(|s| (s.model_id, s.replicas.to_string()));
    let model = RwSignal::new(model);
    let replicas = RwSignal::new(replicas);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);
    let done = RwSignal::new(None::<String>);
    let model_error = Signal::derive(move || field_error(error, "model_id", || None));

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let Ok(replicas) = parse_replicas(&replicas.get_untracked(), MAX_PREDICT_REPLICAS) else {
            return;
        };
        let body = UpdateService {
            model_id: model.get_untracked(),
            replicas: Some(replicas),
        };
        let name = svc.with_untracked(|s| s.name.clone());
        pending.set(true);
        error.set(None);
        done.set(None);
        spawn_local(async move {
            let r = api::update_service(&name, &body).await;
            pending.try_set(false);
            match r {
                Ok(s) => {
                    let switched = svc.with_untracked(|old| old.model_id != s.model_id);
                    done.try_set(Some(
                        if switched {
                            "Switched. The new version loads beside the old one, which answers until it is ready."
                        } else {
                            "Saved."
                        }
                        .to_owned(),
                    ));
                    svc.try_set(s);
                }
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(e));
                }
            }
        });
    };

    let options = move || {
        models.get().and_then(Result::ok).map(|list| {
            list.into_iter()
                .map(|m| {
                    let id = m.id;
                    view! {
                        <option value=id.to_string() prop:selected=move || model.get() == Some(id)>
                            {format!(
                                "v{} · {} {}",
                                m.version,
                                format::percent(m.metrics.headline().1),
                                m.metrics.headline().0,
                            )}
                        </option>
                    }
                })
                .collect_view()
        })
    };

    view! {
        <section class="section" data-testid="switch-section">
            <h2>"Switch version"</h2>
            <div class="panel">
                <form class="add-form console-form" on:submit=submit novalidate=true data-testid="switch-form">
                    <label class="field">
                        <span>"Model version"</span>
                        <select
                            data-testid="switch-model"
                            aria-invalid=invalid(model_error)
                            on:change=move |ev| {
                                model.set(event_target_value(&ev).parse::<i64>().ok());
                                clear_field_error(error, "model_id");
                            }
                        >
                            {options}
                        </select>
                        <FieldMessage error=model_error testid="switch-model-error"/>
                    </label>
                    <ReplicasField
                        value=replicas
                        error=error
                        max=MAX_PREDICT_REPLICAS
                        testid="switch-replicas"
                        error_testid="switch-replicas-error"
                    />
                    <div class="add-submit">
                        <SubmitButton pending=pending label="Apply" busy="Applying…" testid="switch-submit"/>
                    </div>
                </form>
                <ErrorNotice error=other_error(error, &["model_id", "replicas"]) testid="switch-error"/>
                <p class="muted small" role="status" data-testid="switch-done">{move || done.get()}</p>
            </div>
        </section>
    }
}

/// A chosen image, read and encoded for the request.
#[derive(Debug, Clone, PartialEq)]
struct Picked {
    name: String,
    mime: String,
    base64: String,
}

/// What is wrong with a pasted token, if anything (it goes into a header as it is).
fn token_rule(token: &str) -> Option<String> {
    if token.is_empty() {
        Some("Paste the token shown when the service was deployed.".to_owned())
    } else if !token.chars().all(|c| c.is_ascii_graphic()) {
        Some("A token has no spaces or accented letters; paste it again.".to_owned())
    } else {
        None
    }
}

/// What a refusal of the predict endpoint means for the person trying it.
fn failure_text(status: u16, failure: &PredictFailure) -> String {
    let hint = match (status, failure.error_code.as_str()) {
        (401, _) | (_, "401") => {
            "Check the token: it is the one shown when the service was deployed."
        }
        (_, "1001") => "The request was not understood.",
        (_, "1002") => "The file is not an image the service can decode (JPEG, PNG or BMP).",
        (_, "2002") => "The service is not ready (its model is loading, or it is busy); try again.",
        (_, "2003") => "The model failed on this image.",
        _ => "The service failed.",
    };
    format!(
        "Refused ({status}, {} {}). {hint}",
        failure.error_code, failure.error_msg
    )
}

/// Send an image with the token, see the labels and the raw answer.
#[component]
fn TryIt(svc: RwSignal<Service>) -> impl IntoView {
    let picked = RwSignal::new(None::<Picked>);
    let token = RwSignal::new(String::new());
    let pending = RwSignal::new(false);
    let answer = RwSignal::new(None::<PredictAnswer>);
    let error = RwSignal::new(None::<String>);
    let file_error = RwSignal::new(None::<String>);
    let token_error = RwSignal::new(None::<String>);
    // Bumped per chosen file, so a slow read of an older file does not win.
    let picks = StoredValue::new(0u32);

    let on_file = move |ev: leptos::ev::Event| {
        answer.set(None);
        file_error.set(None);
        picks.update_value(|n| *n += 1);
        let pick = picks.get_value();
        picked.set(None);
        let Some(file) = chosen_file(&ev) else {
            return;
        };
        if file.size() > MAX_IMAGE_BYTES {
            file_error.set(Some(format!(
                "{} is larger than 16 MB; choose a smaller image.",
                file.name()
            )));
            return;
        }
        spawn_local(async move {
            let read = read_bytes(&file).await;
            if picks.try_get_value() != Some(pick) {
                return;
            }
            match read {
                Ok(bytes) => {
                    picked.try_set(Some(Picked {
                        name: file.name(),
                        mime: file.type_(),
                        base64: base64::encode(&bytes),
                    }));
                }
                Err(message) => {
                    file_error.try_set(Some(message));
                }
            }
        });
    };

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let t = token.get_untracked().trim().to_owned();
        let token_problem = token_rule(&t);
        let bad_token = token_problem.is_some();
        token_error.set(token_problem);
        let image = picked.with_untracked(|p| p.as_ref().map(|p| p.base64.clone()));
        if image.is_none() && file_error.get_untracked().is_none() {
            file_error.set(Some("Choose an image first.".to_owned()));
        }
        let (Some(image), false) = (image, bad_token) else {
            return;
        };
        let endpoint = svc.with_untracked(|s| s.endpoint.clone());
        pending.set(true);
        error.set(None);
        answer.set(None);
        spawn_local(async move {
            let r = api::predict(&endpoint, &t, image).await;
            pending.try_set(false);
            match r {
                Ok(a) => {
                    answer.try_set(Some(a));
                }
                Err(e) => {
                    error.try_set(Some(sentence(&e.message)));
                }
            }
        });
    };

    let preview = move || {
        picked.with(|p| {
            p.as_ref().map(|p| {
                view! {
                    <figure class="try-preview">
                        <img
                            src=format!("data:{};base64,{}", p.mime, p.base64)
                            alt=p.name.clone()
                            data-testid="try-preview"
                        />
                        <figcaption class="muted small">{p.name.clone()}</figcaption>
                    </figure>
                }
            })
        })
    };

    let result = move || {
        answer.get().map(|a| {
            let shown = match &a.outcome {
                Ok(r) => {
                    let predictions = r.output.first().map(|o| o.body.clone()).unwrap_or_default();
                    view! {
                        <p class="muted small" data-testid="predict-meta">
                            {format!("Image of {} × {} px", r.meta.width, r.meta.height)}
                        </p>
                        <ol class="predict-labels" data-testid="predict-labels">
                            {predictions
                                .into_iter()
                                .map(|p| {
                                    let label = p.label.clone();
                                    let share = if p.conf.is_finite() { p.conf.clamp(0.0, 1.0) } else { 0.0 };
                                    view! {
                                        <li data-testid="predict-label" data-label=label data-conf=p.conf>
                                            <span class="predict-name">{p.label}</span>
                                            <span class="conf-bar" aria-hidden="true">
                                                <span style=format!("width: {:.1}%", share * 100.0)></span>
                                            </span>
                                            <span class="predict-conf">{format::percent(p.conf)}</span>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ol>
                    }
                        .into_any()
                }
                Err(f) => {
                    view! {
                        <p class="alert error" role="alert" data-testid="predict-error" data-code=f.error_code.clone()>
                            {failure_text(a.status, f)}
                        </p>
                    }
                        .into_any()
                }
            };
            view! {
                <div class="console-out" data-testid="predict-answer" data-status=a.status>
                    <div>{shown}</div>
                    <pre class="json" data-testid="predict-json">{a.json}</pre>
                </div>
            }
        })
    };

    view! {
        <section class="section" data-testid="try-section">
            <h2>"Try it"</h2>
            <div class="panel">
                <form on:submit=submit novalidate=true data-testid="try-form">
                    <div class="form-grid">
                        <label class="field">
                            <span>"Image " <small class="muted">"(JPEG, PNG or BMP)"</small></span>
                            <input
                                type="file"
                                accept="image/png,image/jpeg,image/bmp"
                                data-testid="try-file"
                                aria-invalid=invalid(file_error.into())
                                on:change=on_file
                            />
                            <FieldMessage error=file_error testid="try-file-error"/>
                        </label>
                        <label class="field">
                            <span>"Token"</span>
                            <input
                                type="text"
                                autocomplete="off"
                                spellcheck="false"
                                placeholder="the token shown when it was deployed"
                                data-testid="try-token"
                                aria-invalid=invalid(token_error.into())
                                prop:value=move || token.get()
                                on:input=move |ev| {
                                    token.set(event_target_value(&ev));
                                    token_error.set(None);
                                }
                            />
                            <FieldMessage error=token_error testid="try-token-error"/>
                        </label>
                    </div>
                    {preview}
                    <div class="actions">
                        <SubmitButton pending=pending label="Predict" busy="Predicting…" testid="try-submit"/>
                    </div>
                </form>
                <ErrorNotice error=error testid="try-error"/>
                {result}
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_what_to_do() {
        let failure = |code: &str, msg: &str| PredictFailure {
            success: false,
            error_code: code.into(),
            error_msg: msg.into(),
        };
        assert_eq!(
            failure_text(401, &failure("401", "missing or wrong token")),
            "Refused (401, 401 missing or wrong token). Check the token: it is the one shown when the service was deployed."
        );
        assert!(failure_text(400, &failure("1002", "IMAGE_DECODE_ERROR")).contains("not an image"));
        assert!(failure_text(503, &failure("2002", "GET_INSTANCE_ERROR")).contains("try again"));
    }

    #[test]
    fn tokens_must_fit_in_a_header() {
        assert_eq!(token_rule("a1B2-_"), None);
        assert!(token_rule("").is_some());
        assert!(token_rule("ab cd").is_some());
        assert!(token_rule("tökén").is_some());
    }
}
