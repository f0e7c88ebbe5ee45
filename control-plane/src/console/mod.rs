//! The web console at `/console`: server-rendered pages (minijinja
//! templates in `control-plane/console/templates/`) with a little htmx
//! (vendored, served from `/console/assets/`, no CDN) for live fleet status
//! and in-place pack validation.
//!
//! Every page calls the operator API's own handlers with the session's
//! [`Operator`], so the console has exactly the API's rules: the same role
//! checks, the same validation, the same admin history.
//!
//! Sessions: logging in with an operator token mints a random session id;
//! the browser keeps it in an HttpOnly, SameSite=Strict cookie scoped to
//! `/console`, the database keeps its SHA-256 (`console_sessions`), and
//! the token itself is never stored. Writes (POST) must come from the
//! console's own pages (`Sec-Fetch-Site`/`Origin` checked) on top of the
//! SameSite cookie.

mod chart;
mod highlight;
mod pages;

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde::Deserialize;

use crate::auth::{Operator, operator_for_token};
use crate::db::{new_secret, sha256_hex};
use crate::error::ApiError;
use crate::state::AppState;

const COOKIE: &str = "sluice_session";
/// How long a console session lasts without a new login.
const SESSION_HOURS: i64 = 8;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/packs") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/packs", get(pages::packs).post(pages::create_pack))
        .route("/console/packs/new", get(pages::new_pack))
        .route("/console/packs/{name}", get(pages::pack))
        .route("/console/packs/{name}/diff", get(pages::diff))
        .route("/console/packs/{name}/edit", get(pages::edit))
        .route("/console/packs/{name}/validate", post(pages::validate))
        .route("/console/packs/{name}/versions", post(pages::save_version))
        .route("/console/packs/{name}/activate", post(pages::activate))
        .route("/console/deployments/rollback", post(pages::rollback))
        .route("/console/fleet", get(pages::fleet))
        .route("/console/fleet/table", get(pages::fleet_table))
        .route("/console/audit", get(pages::audit))
        .route("/console/assets/htmx.min.js", get(htmx))
        .route("/console/assets/console.css", get(css))
        .layer(axum::middleware::from_fn(same_origin_writes))
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        (
            "base.html",
            include_str!("../../console/templates/base.html"),
        ),
        (
            "login.html",
            include_str!("../../console/templates/login.html"),
        ),
        (
            "packs.html",
            include_str!("../../console/templates/packs.html"),
        ),
        (
            "pack.html",
            include_str!("../../console/templates/pack.html"),
        ),
        (
            "diff.html",
            include_str!("../../console/templates/diff.html"),
        ),
        (
            "edit.html",
            include_str!("../../console/templates/edit.html"),
        ),
        (
            "validation.html",
            include_str!("../../console/templates/validation.html"),
        ),
        (
            "fleet.html",
            include_str!("../../console/templates/fleet.html"),
        ),
        (
            "fleet_table.html",
            include_str!("../../console/templates/fleet_table.html"),
        ),
        (
            "audit.html",
            include_str!("../../console/templates/audit.html"),
        ),
        (
            "error.html",
            include_str!("../../console/templates/error.html"),
        ),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env
});

/// Renders a template; `.html` templates escape every value unless it was
/// made with `Value::from_safe_string` (the highlighter's output).
pub fn render(name: &str, ctx: minijinja::Value) -> Response {
    match TEMPLATES.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "console error; see the control plane's log",
            )
                .into_response()
        }
    }
}

/// An API error as a console page, with the API's status and message.
pub fn error_page(op: &Operator, err: ApiError) -> Response {
    let status = err.status();
    let message = err.public_message();
    let mut resp = render(
        "error.html",
        minijinja::context! { op => op_ctx(op), status => status.as_u16(), message },
    );
    *resp.status_mut() = status;
    resp
}

pub fn op_ctx(op: &Operator) -> minijinja::Value {
    minijinja::context! {
        name => op.name.clone(),
        role => op.role.as_str(),
        can_edit => op.role >= crate::auth::Role::Editor,
    }
}

/// The operator behind the session cookie; pages without one send the
/// browser to the login page (htmx requests get `HX-Redirect`).
pub struct Session(pub Operator);

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let to_login = || {
            let mut r = Redirect::to("/console/login").into_response();
            r.headers_mut()
                .insert("hx-redirect", HeaderValue::from_static("/console/login"));
            r
        };
        let Some(id) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT o.name, o.role FROM console_sessions s JOIN operators o ON o.name = s.operator
             WHERE s.id_sha256 = $1 AND s.expires_at > now() AND o.enabled",
        )
        .bind(sha256_hex(&id))
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| ApiError::Database(e).into_response())?;
        match row {
            Some((name, role)) => Ok(Session(Operator {
                name,
                role: crate::auth::Role::parse(&role).unwrap_or(crate::auth::Role::Viewer),
            })),
            None => Err(to_login()),
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Refuses writes that did not come from the console's own pages: a
/// browser marks cross-site requests in `Sec-Fetch-Site` and `Origin`.
async fn same_origin_writes(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.method() == Method::POST {
        let h = req.headers();
        let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let cross_site = matches!(site, Some(s) if s != "same-origin" && s != "none");
        let origin_host = h
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .and_then(|o| o.split_once("://").map(|(_, rest)| rest.to_string()));
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let foreign_origin = matches!((&origin_host, host), (Some(o), Some(h)) if o != h);
        if cross_site || foreign_origin {
            return (
                StatusCode::FORBIDDEN,
                "cross-site request refused: use the console's own pages",
            )
                .into_response();
        }
    }
    next.run(req).await
}

async fn login_page() -> Response {
    render("login.html", minijinja::context! {})
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(app): State<AppState>, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let refused = |message: &str| {
        let mut r = render("login.html", minijinja::context! { error => message });
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    let op = match operator_for_token(&app.pool, form.token.trim()).await {
        Ok(Some(op)) => op,
        Ok(None) => return refused("That token is not an enabled operator's token."),
        Err(e) => return ApiError::Database(e).into_response(),
    };
    let id = new_secret("scs-");
    let created = sqlx::query(
        "INSERT INTO console_sessions (id_sha256, operator, expires_at)
         VALUES ($1, $2, now() + make_interval(hours => $3::int))",
    )
    .bind(sha256_hex(&id))
    .bind(&op.name)
    .bind(SESSION_HOURS as i32)
    .execute(&app.pool)
    .await;
    if let Err(e) = created {
        return ApiError::Database(e).into_response();
    }
    // Expired sessions are cleared as new ones are made.
    let _ = sqlx::query("DELETE FROM console_sessions WHERE expires_at < now()")
        .execute(&app.pool)
        .await;
    tracing::info!(operator = %op.name, "console login");
    let mut resp = Redirect::to("/console/packs").into_response();
    let cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_HOURS * 3600
    );
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    resp
}

async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        let _ = sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
            .bind(sha256_hex(&id))
            .execute(&app.pool)
            .await;
    }
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "sluice_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

async fn htmx() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../console/assets/htmx.min.js"),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../console/assets/console.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        assert!(TEMPLATES.templates().count() >= 11);
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sluice_session=scs-abc; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("scs-abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
