//! Deploying as a service, wherever the app offers it: the form (name and replicas), the
//! box that shows a new service's token once with a ready curl line, the list of services
//! with their status, and Undeploy. Recall services are deployed from the recall workspace,
//! model versions from their model page; every service has its own page
//! ([`crate::pages::service`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;
use shared::names::InstanceName;
use shared::recall::{CreateService, Service};
use wasm_bindgen_futures::JsFuture;

use crate::api::{self, ApiError, ApiResult};
use crate::form::{
    NameField, NumberField, SubmitButton, clear_field_error, field_error, other_error,
};
use crate::pages::common::{ErrorNotice, OpenFormButton, confirm, list_or_empty};
use crate::save::sentence;
use crate::timers::{alive_flag, sleep};
use crate::{Session, format, use_session};

/// How often a predict service that is loading is asked again for its status.
pub const STATUS_POLL_MS: i32 = 2000;
/// The server's limits on replicas.
pub const MAX_PREDICT_REPLICAS: i64 = 16;
const MAX_RECALL_REPLICAS: i64 = 64;

/// `https://host:port` of this page: where the endpoints are.
pub fn origin() -> String {
    window().location().origin().unwrap_or_default()
}

/// The full URL of the service's endpoint.
pub fn service_url(svc: &Service) -> String {
    format!("{}{}", origin(), svc.endpoint)
}

/// A shell line that asks a recall service for `user` (a placeholder when empty).
fn recall_curl(origin: &str, endpoint: &str, token: &str, user: &str) -> String {
    let user = if user.is_empty() { "USER_ID" } else { user };
    format!(
        "curl -H 'Authorization: {token}' '{origin}{endpoint}?user_id={}&size=10'",
        String::from(js_sys::encode_uri_component(user))
    )
}

/// A shell line that sends `image.jpg` to a predict service.
fn predict_curl(origin: &str, endpoint: &str, token: &str) -> String {
    format!(
        r#"curl -H "Authorization: {token}" -H 'content-type: application/json' -d '{{"dataArray":[{{"name":"image","type":"stream","body":"'$(base64 -w0 image.jpg)'"}}]}}' {origin}{endpoint}"#
    )
}

/// A shell line that calls `svc` with `token`, ready to paste (`user`: the user id a
/// recall service is asked for).
pub fn curl_line(svc: &Service, token: &str, user: &str) -> String {
    if svc.kind == "predict" {
        predict_curl(&origin(), &svc.endpoint, token)
    } else {
        recall_curl(&origin(), &svc.endpoint, token, user)
    }
}

/// Whether a service answers: a predict service loads its model first (and may fail to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    Loading,
    Running,
    /// With the server's reason.
    Failed(String),
}

impl ServiceState {
    pub fn of(svc: &Service) -> Self {
        match svc.status.as_deref() {
            Some("running") => Self::Running,
            Some(s) if s.starts_with("failed") => Self::Failed(
                s["failed".len()..]
                    .trim_start_matches(':')
                    .trim()
                    .to_owned(),
            ),
            // A recall service answers as soon as it exists.
            None if svc.kind != "predict" => Self::Running,
            _ => Self::Loading,
        }
    }

    pub fn key(&self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Running => "running",
            Self::Failed(_) => "failed",
        }
    }
}

/// The state as a coloured badge (the reason of a failure as its tooltip).
pub fn state_badge(state: ServiceState) -> impl IntoView {
    let key = state.key();
    let (title, tip) = match state {
        ServiceState::Loading => (
            "Loading",
            "The model is loading; requests wait for it.".to_owned(),
        ),
        ServiceState::Running => ("Running", "Answering requests.".to_owned()),
        ServiceState::Failed(reason) => ("Failed", reason),
    };
    view! {
        <span
            class=format!("badge svc-status svc-{key}")
            data-testid="service-status"
            data-status=key
            title=tip
        >
            {title}
        </span>
    }
}

/// The predict services of `instance` (only those serving `model`, when given), fetched
/// again every [`STATUS_POLL_MS`] while one of them is loading.
pub fn predict_services(
    instance: i64,
    model: Option<i64>,
) -> LocalResource<ApiResult<Vec<Service>>> {
    let session = use_session();
    let list = LocalResource::new(move || {
        session.checked(async move {
            let mut services = api::list_predict_services(instance).await?;
            if let Some(m) = model {
                services.retain(|s| s.model_id == Some(m));
            }
            Ok(services)
        })
    });
    let alive = alive_flag();
    spawn_local(async move {
        loop {
            sleep(STATUS_POLL_MS).await;
            if !alive.load(Ordering::Relaxed) {
                return;
            }
            let loading = matches!(
                list.get_untracked(),
                Some(Ok(v)) if v.iter().any(|s| ServiceState::of(s) == ServiceState::Loading)
            );
            if loading {
                list.refetch();
            }
        }
    });
    list
}

/// Asks first, then undeploys `name`: `done` runs once it is gone; a refusal lands in
/// `error`.
pub fn undeploy(
    session: Session,
    name: String,
    error: RwSignal<Option<String>>,
    done: impl FnOnce() + 'static,
) {
    if !confirm(&format!(
        "Undeploy service \u{201c}{name}\u{201d}? Its endpoint and token stop working."
    )) {
        return;
    }
    error.set(None);
    spawn_local(async move {
        match api::delete_service(&name).await {
            Ok(()) => done(),
            Err(e) => {
                session.check(&e);
                error.try_set(Some(sentence(&e.message)));
            }
        }
    });
}

/// A small button that copies `text` to the clipboard and says so.
#[component]
pub fn CopyButton(
    #[prop(into)] text: Signal<String>,
    label: &'static str,
    testid: &'static str,
) -> impl IntoView {
    let copied = RwSignal::new(false);
    // New text has not been copied yet.
    Effect::new(move |_| {
        text.track();
        copied.set(false);
    });
    let copy = move |_| {
        let promise = window()
            .navigator()
            .clipboard()
            .write_text(&text.get_untracked());
        spawn_local(async move {
            if JsFuture::from(promise).await.is_ok() {
                copied.try_set(true);
            }
        });
    };
    view! {
        <button type="button" class="button subtle small" data-testid=testid on:click=copy>
            {move || if copied.get() { "Copied" } else { label }}
        </button>
    }
}

/// A new service's token (shown this once), its endpoint and a curl line, with a link to
/// its page; "I have saved it" closes the box.
#[component]
pub fn TokenBox(
    created: RwSignal<Option<Service>>,
    /// The user id a recall service's curl line asks for.
    #[prop(optional)]
    user: Signal<String>,
) -> impl IntoView {
    let field =
        move |f: fn(&Service) -> String| created.with(|c| c.as_ref().map(f).unwrap_or_default());
    let token = Signal::derive(move || field(|c| c.token.clone().unwrap_or_default()));
    let curl = Signal::derive(move || {
        let user = user.get();
        created.with(|c| {
            c.as_ref()
                .map(|s| curl_line(s, s.token.as_deref().unwrap_or_default(), &user))
                .unwrap_or_default()
        })
    });
    view! {
        <Show when=move || created.with(Option::is_some)>
            <div class="token-box" role="status" data-testid="service-token-box">
                <p>
                    <strong>{move || field(|c| format!("Service {} is deployed.", c.name))}</strong>
                    " Copy its token now: it is shown this once and never again."
                </p>
                <div class="field">
                    <span>"Token"</span>
                    <div class="copy-line">
                        <code class="secret" data-testid="service-token">{token}</code>
                        <CopyButton text=token label="Copy token" testid="service-token-copy"/>
                    </div>
                </div>
                <div class="field">
                    <span>"Endpoint"</span>
                    <code class="secret" data-testid="service-endpoint-url">{move || field(service_url)}</code>
                </div>
                <div class="field">
                    <span>"Try it"</span>
                    <pre class="json curl" data-testid="service-curl">{curl}</pre>
                </div>
                <div class="actions">
                    <CopyButton text=curl label="Copy curl line" testid="service-copy"/>
                    <A
                        href=move || field(|c| format!("/services/{}", c.name))
                        attr:class="button subtle small"
                        attr:data-testid="service-page-link"
                    >
                        "Open its page"
                    </A>
                    <button
                        type="button"
                        class="button subtle small"
                        data-testid="service-token-done"
                        on:click=move |_| created.set(None)
                    >
                        "I have saved it"
                    </button>
                </div>
            </div>
        </Show>
    }
}

/// What a deploy form deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployTarget {
    /// A recall instance's strategies and filters.
    Recall(i64),
    /// A model version.
    Model(i64),
}

impl DeployTarget {
    fn max_replicas(self) -> i64 {
        match self {
            Self::Recall(_) => MAX_RECALL_REPLICAS,
            Self::Model(_) => MAX_PREDICT_REPLICAS,
        }
    }

    async fn deploy(self, body: CreateService) -> ApiResult<Service> {
        match self {
            Self::Recall(instance) => api::create_service(instance, &body).await,
            Self::Model(model) => api::deploy_model(model, &body).await,
        }
    }
}

/// The server's rule for service names (those of instances), as it words it.
pub fn name_rule(name: &str) -> Option<String> {
    InstanceName::parse(name)
        .err()
        .map(|e| e.to_string().replace("instance name", "service name"))
}

/// Replicas as typed: a whole number from 1 to `max`.
pub fn parse_replicas(text: &str, max: i64) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("replicas is 1 to {max}")),
    }
}

/// The replicas input of a service form: its own rule, or the server's word on it.
#[component]
pub fn ReplicasField(
    value: RwSignal<String>,
    /// The form's last error from the server.
    error: RwSignal<Option<ApiError>>,
    max: i64,
    testid: &'static str,
    error_testid: &'static str,
) -> impl IntoView {
    let shown = Signal::derive(move || {
        field_error(error, "replicas", || {
            value.with(|r| parse_replicas(r, max).err())
        })
    });
    view! {
        <NumberField
            label="Replicas"
            value=value
            error=shown
            testid=testid
            error_testid=error_testid
            class="count-field"
            min=1
            max=max as u32
            step="1"
            on_input=move |()| clear_field_error(error, "replicas")
        />
    }
}

/// Service name and replicas, then Deploy. The new service (with its token) goes into
/// `created`; `on_deployed` runs after.
#[component]
pub fn DeployForm(
    target: DeployTarget,
    created: RwSignal<Option<Service>>,
    #[prop(into)] on_deployed: Callback<()>,
    /// Offers Cancel, which runs this.
    #[prop(optional_no_strip)]
    on_cancel: Option<Callback<()>>,
    placeholder: &'static str,
) -> impl IntoView {
    let session = use_session();
    let max = target.max_replicas();
    let name = RwSignal::new(String::new());
    let replicas = RwSignal::new("1".to_owned());
    let touched = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<ApiError>);

    let name_local = Memo::new(move |_| name.with(|n| name_rule(n)));

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        touched.set(true);
        if pending.get_untracked() || name_local.get_untracked().is_some() {
            return;
        }
        let Ok(replicas) = parse_replicas(&replicas.get_untracked(), max) else {
            return;
        };
        let body = CreateService {
            name: name.get_untracked(),
            replicas,
        };
        pending.set(true);
        error.set(None);
        created.set(None);
        spawn_local(async move {
            let r = target.deploy(body).await;
            pending.try_set(false);
            match r {
                Ok(svc) => {
                    created.try_set(Some(svc));
                    name.try_set(String::new());
                    touched.try_set(false);
                    on_deployed.run(());
                }
                Err(e) => {
                    session.check(&e);
                    error.try_set(Some(e));
                }
            }
        });
    };

    view! {
        <form class="add-form" on:submit=submit novalidate=true data-testid="service-form">
            <NameField
                label="Service name"
                placeholder=placeholder
                value=name
                touched=touched
                rule=name_local
                error=error
                testid="service-name"
                error_testid="service-name-error"
            />
            <ReplicasField
                value=replicas
                error=error
                max=max
                testid="service-replicas"
                error_testid="service-replicas-error"
            />
            <div class="add-submit actions">
                <SubmitButton pending=pending label="Deploy" busy="Deploying…" testid="service-submit"/>
                {on_cancel
                    .map(|cancel| {
                        view! {
                            <button type="button" class="button subtle" data-testid="service-cancel" on:click=move |_| cancel.run(())>
                                "Cancel"
                            </button>
                        }
                    })}
            </div>
        </form>
        <ErrorNotice error=other_error(error, &["name", "replicas"]) testid="service-error"/>
    }
}

/// A "Services" section: the services in `list`, the deploy form and the token box of what
/// it deployed; `children` say what a service answers.
#[component]
pub fn ServicesSection(
    target: DeployTarget,
    list: LocalResource<ApiResult<Vec<Service>>>,
    testid: &'static str,
    /// The section's element id, for links to it.
    #[prop(optional)]
    anchor: Option<&'static str>,
    /// Said when there is none.
    empty: &'static str,
    placeholder: &'static str,
    /// The form opens with a Deploy button and closes after deploying (else it stays open).
    #[prop(optional)]
    collapsed: bool,
    /// The user id a recall service's curl line asks for.
    #[prop(optional)]
    user: Signal<String>,
    /// The version of each model id, to name what predict services serve.
    #[prop(optional)]
    versions: Signal<BTreeMap<i64, i64>>,
    children: Children,
) -> impl IntoView {
    let session = use_session();
    let open = RwSignal::new(!collapsed);
    let created = RwSignal::new(None::<Service>);
    let list_error = RwSignal::new(None::<String>);
    let remove = Callback::new(move |name: String| {
        let gone = name.clone();
        undeploy(session, name, list_error, move || {
            if created.with_untracked(|c| c.as_ref().is_some_and(|c| c.name == gone)) {
                created.try_set(None);
            }
            list.refetch();
        });
    });
    let deployed = Callback::new(move |()| {
        if collapsed {
            open.try_set(false);
        }
        list.refetch();
    });
    let cancel = collapsed.then(|| Callback::new(move |()| open.set(false)));
    view! {
        <section class="section" id=anchor data-testid=testid>
            <div class="section-head">
                <h2>"Services"</h2>
                <OpenFormButton open=open testid="deploy-open" label="Deploy"/>
            </div>
            <div class="panel">
                <p class="muted small">{children()}</p>
                <TokenBox created=created user=user/>
                <ErrorNotice error=list_error testid="service-list-error"/>
                <ServiceList list=list empty=empty versions=versions on_undeploy=remove/>
                <Show when=move || open.get()>
                    <DeployForm
                        target=target
                        created=created
                        on_deployed=deployed
                        on_cancel=cancel
                        placeholder=placeholder
                    />
                </Show>
            </div>
        </section>
    }
}

/// The services `list` holds, each linking to its page; `on_undeploy` adds an Undeploy
/// button to each.
#[component]
pub fn ServiceList(
    list: LocalResource<ApiResult<Vec<Service>>>,
    /// Said when there is none.
    empty: &'static str,
    /// The version of each model id, to name what predict services serve.
    #[prop(optional)]
    versions: Signal<BTreeMap<i64, i64>>,
    #[prop(optional)] on_undeploy: Option<Callback<String>>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading services…"</p> }>
            {move || {
                list.get()
                    .map(|result| {
                        list_or_empty(
                            result,
                            "service-list-load-error",
                            move || view! { <p class="muted empty-note" data-testid="service-empty">{empty}</p> },
                            move |services| {
                                view! {
                                    <ul class="rule-list" data-testid="service-list">
                                        {services
                                            .into_iter()
                                            .map(|s| service_row(s, versions, on_undeploy))
                                            .collect_view()}
                                    </ul>
                                }
                            },
                        )
                    })
            }}
        </Transition>
    }
}

/// "model v3" (or "model 7" until the versions are known).
pub fn model_title(versions: Signal<BTreeMap<i64, i64>>, model: i64) -> impl Fn() -> String + Copy {
    move || match versions.with(|v| v.get(&model).copied()) {
        Some(version) => format!("model v{version}"),
        None => format!("model {model}"),
    }
}

fn service_row(
    svc: Service,
    versions: Signal<BTreeMap<i64, i64>>,
    on_undeploy: Option<Callback<String>>,
) -> impl IntoView {
    let state = ServiceState::of(&svc);
    let key = state.key();
    let url = service_url(&svc);
    let name = svc.name.clone();
    let href = format!("/services/{name}");
    let title = name.clone();
    let data_name = name.clone();
    let badge = (svc.kind == "predict").then(|| state_badge(state));
    let model = svc.model_id.map(|m| {
        view! {
            <A href=format!("/models/{m}") attr:data-testid="service-model-link">{model_title(versions, m)}</A>
            " · "
        }
    });
    view! {
        <li class="rule-row" data-testid="service-row" data-name=data_name data-status=key>
            <div class="rule-main">
                <div class="row-main">
                    <A href=href attr:class="path" attr:data-testid="service-link">
                        <strong>{title}</strong>
                    </A>
                    {badge}
                </div>
                <span class="muted small path" data-testid="service-endpoint" data-endpoint=svc.endpoint.clone()>
                    {url}
                </span>
                <span class="muted small">
                    {model}
                    {format!(
                        "{} · since {}",
                        format::count(svc.replicas, "replica", "replicas"),
                        format::timestamp(&svc.created_at),
                    )}
                </span>
            </div>
            {on_undeploy
                .map(|undeploy| {
                    view! {
                        <button
                            type="button"
                            class="button danger small"
                            data-testid="service-delete"
                            on:click=move |_| undeploy.run(name.clone())
                        >
                            "Undeploy"
                        </button>
                    }
                })}
        </li>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(kind: &str, status: Option<&str>) -> Service {
        Service {
            id: 1,
            name: "svc".into(),
            instance_id: 2,
            kind: kind.into(),
            replicas: 1,
            endpoint: format!("/api/{kind}/svc"),
            created_at: "2024-01-01T00:00:00Z".into(),
            model_id: (kind == "predict").then_some(3),
            status: status.map(str::to_owned),
            token: None,
        }
    }

    #[test]
    fn states_follow_the_status() {
        let state = |kind, status| ServiceState::of(&service(kind, status));
        assert_eq!(state("predict", Some("loading")), ServiceState::Loading);
        assert_eq!(state("predict", None), ServiceState::Loading);
        assert_eq!(state("predict", Some("running")), ServiceState::Running);
        assert_eq!(
            state("predict", Some("failed: no such artifact")),
            ServiceState::Failed("no such artifact".into())
        );
        assert_eq!(
            state("predict", Some("failed")),
            ServiceState::Failed(String::new())
        );
        assert_eq!(state("recall", None), ServiceState::Running);
    }

    #[test]
    fn the_predict_curl_line_sends_a_base64_image() {
        assert_eq!(
            predict_curl("http://h:8080", "/api/predict/shapes", "<token>"),
            r#"curl -H "Authorization: <token>" -H 'content-type: application/json' -d '{"dataArray":[{"name":"image","type":"stream","body":"'$(base64 -w0 image.jpg)'"}]}' http://h:8080/api/predict/shapes"#
        );
    }

    #[test]
    fn replicas_and_names_follow_the_server_rules() {
        assert_eq!(parse_replicas(" 3 ", 16), Ok(3));
        assert_eq!(parse_replicas("17", 16), Err("replicas is 1 to 16".into()));
        assert!(parse_replicas("0", 64).is_err());
        assert!(parse_replicas("1.5", 64).is_err());
        assert_eq!(name_rule("shapes-svc"), None);
        assert!(name_rule("bad name").unwrap().starts_with("service name"));
    }
}
