use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_query_map;

use crate::{SessionStatus, api, use_session};

/// Where to go after logging in: the `next` query parameter when it is a path on this site
/// (never another origin: `//host` or `/\host` would leave it).
fn next_path(next: Option<String>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") => p,
        _ => "/".to_owned(),
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let session = use_session();
    let query = use_query_map();
    let next = move || next_path(query.with(|q| q.get("next")));

    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let (user, pass) = (username.get_untracked(), password.get_untracked());
        if user.trim().is_empty() || pass.is_empty() {
            error.set(Some("Enter your username and password.".to_owned()));
            return;
        }
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match api::login(user.trim().to_owned(), pass).await {
                Ok(response) => {
                    password.set(String::new());
                    pending.set(false);
                    // The `<Redirect>` below takes the user on.
                    session.logged_in(response.user);
                }
                Err(e) => {
                    pending.set(false);
                    error.set(Some(e.message));
                }
            }
        });
    };

    let logged_in = Memo::new(move |_| session.status() == SessionStatus::LoggedIn);

    view! {
        <Show when=move || logged_in.get()>
            <Redirect path=next()/>
        </Show>
        <section class="panel narrow login" data-testid="login-page">
            <h1>"Log in"</h1>
            <p class="muted">"Train, evaluate and deploy models from your own data."</p>
            <form on:submit=submit novalidate=true data-testid="login-form">
                <label class="field">
                    <span>"Username"</span>
                    <input
                        type="text"
                        name="username"
                        autocomplete="username"
                        autocapitalize="none"
                        spellcheck="false"
                        required=true
                        data-testid="login-username"
                        bind:value=username
                    />
                </label>
                <label class="field">
                    <span>"Password"</span>
                    <input
                        type="password"
                        name="password"
                        autocomplete="current-password"
                        required=true
                        data-testid="login-password"
                        bind:value=password
                    />
                </label>
                <Show when=move || error.get().is_some()>
                    <p class="alert error" role="alert" data-testid="login-error">
                        {move || error.get().unwrap_or_default()}
                    </p>
                </Show>
                <button
                    type="submit"
                    class="button primary wide"
                    data-testid="login-submit"
                    disabled=move || pending.get()
                >
                    {move || if pending.get() { "Logging in…" } else { "Log in" }}
                </button>
            </form>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::next_path;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(next_path(Some("/instances/3".into())), "/instances/3");
        assert_eq!(next_path(Some("//evil.example".into())), "/");
        assert_eq!(next_path(Some("/\\evil.example".into())), "/");
        assert_eq!(next_path(Some("https://evil.example".into())), "/");
        assert_eq!(next_path(None), "/");
    }
}
