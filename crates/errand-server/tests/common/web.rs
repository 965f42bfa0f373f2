//! The web UI served in-process on a loopback port over a [`World`]'s store, and what a browser
//! does to use it without a browser: make a user with an API token, sign in through the form
//! (nonce cookie and all), fetch pages with the session cookie.

use errand_server::api::{ApiConfig, AppState};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, SET_COOKIE};

use super::World;

pub struct Web {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    /// Does not follow redirects: tests assert on them.
    pub http: reqwest::Client,
    pub state: AppState,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Web {
    /// Serves the API and the web UI over `world`'s store until dropped.
    pub async fn start(world: &World) -> Web {
        let state = AppState::new(world.store.clone(), ApiConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            errand_server::api::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        Web { url, http, state, _stop: stop }
    }

    /// The user `name` (made on first use) and a new API token of theirs.
    pub async fn user(&self, name: &str) -> String {
        let user = match self.state.store.user_by_name(name).await {
            Ok(user) => user,
            Err(_) => self.state.store.create_user(name).await.unwrap(),
        };
        self.state.store.create_token(user.id, "test").await.unwrap().secret
    }

    /// The sign-in form's nonce cookie (`name=value`) and the nonce in the form.
    pub async fn login_form(&self) -> (String, String) {
        let response = self.http.get(format!("{}/login", self.url)).send().await.unwrap();
        let cookie = cookie(response.headers(), "errand_login").unwrap();
        (cookie, field(&response.text().await.unwrap(), "nonce"))
    }

    /// Signs in as a browser does and returns the session cookie (`name=value`).
    pub async fn sign_in(&self, token: &str) -> String {
        let (nonce_cookie, nonce) = self.login_form().await;
        let response = self
            .http
            .post(format!("{}/login", self.url))
            .header("cookie", &nonce_cookie)
            .header("origin", &self.url)
            .form(&[("token", token), ("nonce", nonce.as_str()), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        cookie(response.headers(), "errand_session").expect("a session cookie")
    }

    /// `GET path` with the session cookie: status, headers, body.
    pub async fn get(&self, session: &str, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    /// `POST path` of a form with the session cookie and, if given, an `Origin`.
    pub async fn post(
        &self,
        session: &str,
        path: &str,
        origin: Option<&str>,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request =
            self.http.post(format!("{}{path}", self.url)).header("cookie", session).form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}

/// The cookie `name` a response sets, as `name=value`; `None` when absent or emptied.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .find(|pair| pair.starts_with(&format!("{name}=")) && pair.len() > name.len() + 1)
}

/// The value of the hidden input `name` in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start =
        html.find(&marker).unwrap_or_else(|| panic!("no {name} field in {html}")) + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}
