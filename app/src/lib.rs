//! AutoLearn in the browser: a Leptos client-side rendered app that talks to the JSON API of
//! `autolearn serve` on the same origin (SPEC §9).
//!
//! Layout: [`api`] holds every fetch; [`pages`] one page per file; [`form`] the pieces of
//! forms; this file holds the shell (session, header, routes). To add a page: write
//! `pages/<name>.rs`, then add a `<Route>` in [`App`] (wrapped in [`RequireLogin`] unless it
//! is public) and, if it is top level, a link in [`Header`].

pub mod api;
pub mod base64;
pub mod charts;
pub mod form;
pub mod format;
pub mod geometry;
pub mod help;
pub mod pages;
pub mod runtime;
pub mod save;
pub mod tags;
pub mod timers;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::{A, Redirect, Route, Router, Routes};
use leptos_router::hooks::{use_location, use_navigate};
use leptos_router::path;
use shared::api::User;
use wasm_bindgen::prelude::wasm_bindgen;

use crate::help::{Help, HelpOverlay, HelpTopic};
use crate::pages::dataset::DatasetPage;
use crate::pages::instance::InstancePage;
use crate::pages::instances::InstancesPage;
use crate::pages::label::LabelPage;
use crate::pages::login::LoginPage;
use crate::pages::model::ModelPage;
use crate::pages::not_found::NotFound;
use crate::pages::preview::PreviewPage;
use crate::pages::publish::PublishPage;
use crate::pages::service::ServicePage;
use crate::pages::task::TaskPage;
use crate::pages::try_model::TryPage;

/// Runs when the module is instantiated (`init()` in `index.html`).
#[wasm_bindgen(start)]
pub fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// Who is logged in, shared by every page through context.
#[derive(Clone, Copy)]
pub struct Session {
    /// `None` until the first `GET /api/auth/me` answers, then the user or `Some(None)`.
    state: RwSignal<Option<Option<User>>>,
}

/// The coarse session state pages branch on (cheap to compare, so a new `User` value with
/// the same login does not re-render whole pages).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionStatus {
    Checking,
    LoggedOut,
    LoggedIn,
}

impl Session {
    fn new() -> Self {
        let session = Self {
            state: RwSignal::new(None),
        };
        spawn_local(async move {
            // A server or network failure is treated as "not logged in": the login page
            // then shows the real error when the user tries.
            let user = api::me().await.unwrap_or(None);
            session.state.set(Some(user));
        });
        session
    }

    pub fn user(&self) -> Option<User> {
        self.state.get().flatten()
    }

    pub fn status(&self) -> SessionStatus {
        self.state.with(|s| match s {
            None => SessionStatus::Checking,
            Some(None) => SessionStatus::LoggedOut,
            Some(Some(_)) => SessionStatus::LoggedIn,
        })
    }

    pub fn logged_in(&self, user: User) {
        self.state.set(Some(Some(user)));
    }

    pub fn logged_out(&self) {
        self.state.set(Some(None));
    }

    /// Call with every API error: a 401 means the session is gone, so show the login page.
    pub fn check(&self, error: &api::ApiError) {
        if error.is_unauthorized() {
            self.logged_out();
        }
    }

    /// Awaits an API call and passes its answer on, after [`Session::check`] on an error:
    /// what every resource that loads from the API does.
    pub async fn checked<T>(
        self,
        call: impl Future<Output = api::ApiResult<T>>,
    ) -> api::ApiResult<T> {
        let result = call.await;
        if let Err(e) = &result {
            self.check(e);
        }
        result
    }
}

pub fn use_session() -> Session {
    expect_context::<Session>()
}

#[component]
pub fn App() -> impl IntoView {
    provide_context(Session::new());
    save::provide_saver();
    provide_context(Help {
        open: RwSignal::new(false),
        topic: RwSignal::new(HelpTopic::General),
    });
    view! {
        <Router>
            <Header/>
            <main class="content">
                <save::SaveBanner/>
                <Routes fallback=NotFound>
                    <Route path=path!("/login") view=LoginPage/>
                    <Route
                        path=path!("/")
                        view=|| view! { <RequireLogin><InstancesPage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/instances/:id")
                        view=|| view! { <RequireLogin><InstancePage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/datasets/:id")
                        view=|| view! { <RequireLogin><DatasetPage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/datasets/:id/label")
                        view=|| view! { <RequireLogin><LabelPage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/tasks/:id")
                        view=|| view! { <RequireLogin><TaskPage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/models/:id")
                        view=|| view! { <RequireLogin><ModelPage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/models/:id/try")
                        view=|| view! { <RequireLogin><TryPage/></RequireLogin> }
                    />
                    <Route
                        path=path!("/models/:id/publish")
                        view=|| view! { <RequireLogin><PublishPage/></RequireLogin> }
                    />
                    // A preview link needs no login: its token is the credential.
                    <Route path=path!("/p/:token") view=PreviewPage/>
                    <Route
                        path=path!("/services/:name")
                        view=|| view! { <RequireLogin><ServicePage/></RequireLogin> }
                    />
                </Routes>
            </main>
            <HelpOverlay/>
        </Router>
    }
}

/// Product name, top-level navigation and the logged-in user.
#[component]
fn Header() -> impl IntoView {
    let session = use_session();
    let help = help::use_help();
    let navigate = use_navigate();
    let logging_out = RwSignal::new(false);
    let logout = move |_| {
        let navigate = navigate.clone();
        logging_out.set(true);
        spawn_local(async move {
            // Whatever the server says, this browser forgets the user; a failed logout
            // leaves a cookie that the next `me` would show, which is the honest state.
            let _ = api::logout().await;
            logging_out.set(false);
            session.logged_out();
            navigate("/login", Default::default());
        });
    };
    view! {
        <header class="topbar">
            <A href="/" {..} class="brand" data-testid="brand">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "AutoLearn"
            </A>
            <Show when=move || session.status() == SessionStatus::LoggedIn>
                <nav class="nav" aria-label="Main">
                    <A href="/" {..} data-testid="nav-instances">"Instances"</A>
                </nav>
                <div class="account">
                    <button
                        class="button subtle icon"
                        data-testid="help-button"
                        title="Keyboard shortcuts (?)"
                        aria-label="Keyboard shortcuts"
                        on:click=move |_| help.open.update(|o| *o = !*o)
                    >
                        "?"
                    </button>
                    <span class="user" data-testid="current-user" title="Logged in as">
                        {move || session.user().map(|u| u.username).unwrap_or_default()}
                    </span>
                    <button
                        class="button subtle"
                        data-testid="logout"
                        on:click=logout.clone()
                        disabled=move || logging_out.get()
                    >
                        "Log out"
                    </button>
                </div>
            </Show>
        </header>
    }
}

/// Shows its children only to a logged-in user; sends others to the login page and back.
#[component]
fn RequireLogin(children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    let location = use_location();
    let status = Memo::new(move |_| session.status());
    move || match status.get() {
        SessionStatus::Checking => {
            view! { <p class="muted" data-testid="loading">"Loading…"</p> }.into_any()
        }
        SessionStatus::LoggedOut => {
            let here = location.pathname.get_untracked();
            let path = if here == "/" {
                "/login".to_owned()
            } else {
                format!(
                    "/login?next={}",
                    String::from(js_sys::encode_uri_component(&here))
                )
            };
            view! { <Redirect path=path/> }.into_any()
        }
        SessionStatus::LoggedIn => children().into_any(),
    }
}
