//! The dashboard's optional bearer-token check (chart value `ui.auth.tokenReview`).
//!
//! A request is let through when its token (the `Authorization: Bearer` header, else the
//! `lopper_ui_token` cookie, else a `?token=` query that then sets the cookie, so a browser
//! only needs the token once) passes a TokenReview against the API and the token's user may
//! `list` `studies.lopper.dev` (a SubjectAccessReview): whoever could read the Studies with
//! kubectl may read the dashboard. Verdicts are kept for a minute so a page's requests cost
//! two API calls at most once a minute per token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

const COOKIE: &str = "lopper_ui_token";
const KEEP: Duration = Duration::from_secs(60);
const MAX_KEPT: usize = 1024;

#[derive(Clone, Default)]
pub enum Auth {
    /// Anyone who reaches the port (the default: reached through `kubectl port-forward`).
    #[default]
    None,
    TokenReview(Arc<Reviewer>),
}

pub struct Reviewer {
    client: kube::Client,
    verdicts: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Auth {
    pub fn token_review(client: kube::Client) -> Auth {
        Auth::TokenReview(Arc::new(Reviewer {
            client,
            verdicts: Mutex::new(HashMap::new()),
        }))
    }

    pub fn layer(&self, routes: Router) -> Router {
        match self {
            Auth::None => routes,
            Auth::TokenReview(r) => {
                routes.layer(axum::middleware::from_fn_with_state(r.clone(), check))
            }
        }
    }
}

/// The token a request carries, and whether it came in the query (then set as a cookie).
pub fn token_of(req: &Request) -> Option<(String, bool)> {
    let h = req.headers();
    if let Some(t) = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some((t.trim().to_string(), false));
    }
    let cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string());
    if let Some(t) = cookie {
        return Some((t, false));
    }
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| (v.to_string(), true))
}

async fn check(State(r): State<Arc<Reviewer>>, req: Request, next: Next) -> Response {
    let Some((token, from_query)) = token_of(&req).filter(|(t, _)| !t.is_empty()) else {
        return unauthorized();
    };
    if !r.allowed(&token).await {
        return unauthorized();
    }
    let mut resp = next.run(req).await;
    if from_query {
        let cookie = format!("{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token that may list studies.lopper.dev is required (open /ui/?token=TOKEN once)\n",
    )
        .into_response()
}

impl Reviewer {
    async fn allowed(&self, token: &str) -> bool {
        if let Some((ok, at)) = crate::controller::view::lock(&self.verdicts).get(token)
            && at.elapsed() < KEEP
        {
            return *ok;
        }
        let ok = match self.review(token).await {
            Ok(ok) => ok,
            Err(e) => {
                // Not kept: the next request asks again.
                tracing::warn!(error = %e, "dashboard token review failed");
                return false;
            }
        };
        let mut v = crate::controller::view::lock(&self.verdicts);
        if v.len() >= MAX_KEPT {
            v.clear();
        }
        v.insert(token.to_string(), (ok, Instant::now()));
        ok
    }

    async fn review(&self, token: &str) -> Result<bool, kube::Error> {
        let tr = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let tr = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &tr)
            .await?;
        let Some(status) = tr.status.filter(|s| s.authenticated == Some(true)) else {
            return Ok(false);
        };
        let user = status.user.unwrap_or_default();
        let sar = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username,
                groups: user.groups,
                uid: user.uid,
                resource_attributes: Some(ResourceAttributes {
                    group: Some("lopper.dev".into()),
                    resource: Some("studies".into()),
                    verb: Some("list".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let sar = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &sar)
            .await?;
        Ok(sar.status.is_some_and(|s| s.allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::get(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_token_comes_from_the_header_then_the_cookie_then_the_query() {
        let t = |r: Request| token_of(&r);
        assert_eq!(
            t(req(
                "/ui/?token=q",
                &[
                    ("authorization", "Bearer h"),
                    ("cookie", "lopper_ui_token=c")
                ]
            )),
            Some(("h".into(), false))
        );
        assert_eq!(
            t(req("/ui/?token=q", &[("cookie", "a=b; lopper_ui_token=c")])),
            Some(("c".into(), false))
        );
        assert_eq!(t(req("/ui/?x=1&token=q", &[])), Some(("q".into(), true)));
        assert_eq!(t(req("/ui/", &[("authorization", "Basic x")])), None);
    }
}
