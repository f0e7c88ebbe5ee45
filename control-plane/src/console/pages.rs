//! The console's pages. Each handler takes the session's operator, calls
//! the operator API's handler for the same action, and renders the answer;
//! an API error becomes an error page with the API's status and message.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::chart::Activity;
use super::{Session, error_page, highlight, op_ctx, render};
use crate::api::{audit, fleet, packs};
use crate::auth::Operator;
use crate::error::ApiError;
use crate::state::AppState;

/// Unwraps an API answer or returns its error page.
macro_rules! api {
    ($op:expr, $call:expr) => {
        match $call.await {
            Ok(Json(v)) => v,
            Err(e) => return error_page(&$op, e),
        }
    };
}

/// A request body the API handlers take as JSON, built from form fields.
fn body<T: serde::de::DeserializeOwned>(v: Value) -> Json<T> {
    Json(serde_json::from_value(v).expect("console forms match the API's bodies"))
}

fn back_to(pack: &str, version: Option<i64>, msg: &str) -> Response {
    let mut url = format!("/console/packs/{}?msg={}", enc(pack), enc(msg));
    if let Some(v) = version {
        url.push_str(&format!("&version={v}"));
    }
    Redirect::to(&url).into_response()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(Deserialize, Default)]
pub struct Msg {
    msg: Option<String>,
    version: Option<i32>,
}

pub async fn packs(
    State(app): State<AppState>,
    Session(op): Session,
    Query(q): Query<Msg>,
) -> Response {
    let list = api!(op, packs::list(State(app.clone()), op.clone()));
    let deployments = api!(op, packs::deployments(State(app), op.clone()));
    render(
        "packs.html",
        context! { op => op_ctx(&op), packs => list["data"], deployments => deployments["data"], msg => q.msg },
    )
}

pub async fn pack(
    State(app): State<AppState>,
    Session(op): Session,
    Path(name): Path<String>,
    Query(q): Query<Msg>,
) -> Response {
    let versions = api!(
        op,
        packs::versions(State(app.clone()), op.clone(), Path(name.clone()))
    );
    let shown = match q.version {
        Some(v) => api!(
            op,
            packs::version(State(app.clone()), op.clone(), Path((name.clone(), v)))
        ),
        None => api!(
            op,
            packs::get(State(app.clone()), op.clone(), Path(name.clone()))
        ),
    };
    let deployments = api!(op, packs::deployments(State(app), op.clone()));
    let mine: Vec<&Value> = deployments["data"]
        .as_array()
        .map(|d| d.iter().filter(|d| d["pack"] == name.as_str()).collect())
        .unwrap_or_default();
    let lines = highlight::yaml(shown["body"].as_str().unwrap_or(""), &[]);
    render(
        "pack.html",
        context! {
            op => op_ctx(&op), name, versions => versions["data"], shown,
            lines, deployments => mine, msg => q.msg,
        },
    )
}

#[derive(Deserialize)]
pub struct DiffForm {
    from: i32,
    to: i32,
}

pub async fn diff(
    State(app): State<AppState>,
    Session(op): Session,
    Path(name): Path<String>,
    Query(q): Query<DiffForm>,
) -> Response {
    let v = api!(
        op,
        packs::diff(
            State(app),
            op.clone(),
            Path(name.clone()),
            Query(serde_json::from_value(json!({"from": q.from, "to": q.to})).expect("diff query"))
        )
    );
    let lines = highlight::diff(v["diff"].as_str().unwrap_or(""));
    render(
        "diff.html",
        context! { op => op_ctx(&op), name, from => q.from, to => q.to, lines },
    )
}

const NEW_PACK: &str = "pack:\n  name: my-pack\n  version: \"1.0.0\"\n\npolicies:\n  chain: [pii-detector]\n\nproviders:\n  targets:\n    - id: chat\n      provider: openai:org/model\n      base_url: http://127.0.0.1:8000/v1\n";

pub async fn new_pack(Session(op): Session) -> Response {
    render(
        "edit.html",
        context! { op => op_ctx(&op), name => "", body => NEW_PACK, creating => true },
    )
}

pub async fn edit(
    State(app): State<AppState>,
    Session(op): Session,
    Path(name): Path<String>,
) -> Response {
    let latest = api!(op, packs::get(State(app), op.clone(), Path(name.clone())));
    render(
        "edit.html",
        context! { op => op_ctx(&op), name, body => latest["body"], base => latest["version"], creating => false },
    )
}

#[derive(Deserialize)]
pub struct BodyForm {
    body: String,
}

/// The validation result as a fragment (htmx swaps it in beside the
/// editor): "valid", or every error with its line marked in the text.
pub async fn validate(
    Session(_op): Session,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<BodyForm>,
) -> Response {
    // `_new`: the editor of a pack not created yet.
    let name = if name == "_new" { "" } else { name.as_str() };
    validation(name, &form.body)
}

fn validation(name: &str, body: &str) -> Response {
    let (errors, summary) = match packs::validate_text(body) {
        Ok(p) if !name.is_empty() && p.name != name => (
            Vec::new(),
            Some(format!(
                "pack.name is '{}' but this is pack '{name}': a version must keep its pack's name",
                p.name
            )),
        ),
        Ok(_) => (Vec::new(), None),
        Err(errors) => (errors, None),
    };
    let error_lines: Vec<u64> = errors.iter().map(|e| e.line as u64).collect();
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({"line": e.line, "column": e.column, "path": e.path, "message": e.message}))
        .collect();
    let lines = if errors.is_empty() {
        Vec::new()
    } else {
        highlight::yaml(body, &error_lines)
    };
    render(
        "validation.html",
        context! { errors, lines, problem => summary, checked => true },
    )
}

pub async fn save_version(
    State(app): State<AppState>,
    Session(op): Session,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<BodyForm>,
) -> Response {
    match packs::new_version(
        State(app),
        op.clone(),
        Path(name.clone()),
        form.body.clone(),
    )
    .await
    {
        Ok((status, Json(v))) => {
            let msg = if status == axum::http::StatusCode::CREATED {
                format!("Saved {name}@{}", v["version"])
            } else {
                format!("No change: the text equals {name}@{}", v["version"])
            };
            back_to(&name, v["version"].as_i64(), &msg)
        }
        Err(e) => edit_again(&op, &name, form.body, e, false),
    }
}

pub async fn create_pack(
    State(app): State<AppState>,
    Session(op): Session,
    axum::Form(form): axum::Form<BodyForm>,
) -> Response {
    match packs::create(State(app), op.clone(), form.body.clone()).await {
        Ok((_, Json(v))) => {
            let name = v["pack"].as_str().unwrap_or("").to_string();
            back_to(&name, v["version"].as_i64(), &format!("Created {name}@1"))
        }
        Err(e) => edit_again(&op, "", form.body, e, true),
    }
}

/// A refused save: the editor again, with the text as typed and the
/// errors at their lines (or the API's message).
fn edit_again(op: &Operator, name: &str, body: String, err: ApiError, creating: bool) -> Response {
    let status = err.status();
    let (errors, problem) = match err {
        ApiError::InvalidPack(errors) => (errors, None),
        other => (Vec::new(), Some(other.public_message())),
    };
    let error_lines: Vec<u64> = errors.iter().map(|e| e.line as u64).collect();
    let lines = highlight::yaml(&body, &error_lines);
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({"line": e.line, "column": e.column, "path": e.path, "message": e.message}))
        .collect();
    let mut resp = render(
        "edit.html",
        context! { op => op_ctx(op), name, body, creating, errors, lines, problem },
    );
    *resp.status_mut() = status;
    resp
}

#[derive(Deserialize)]
pub struct ActivateForm {
    version: i32,
    #[serde(default)]
    selector: String,
}

pub async fn activate(
    State(app): State<AppState>,
    Session(op): Session,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<ActivateForm>,
) -> Response {
    let v = api!(
        op,
        packs::activate(
            State(app),
            op.clone(),
            Path(name.clone()),
            body(json!({"version": form.version, "selector": form.selector}))
        )
    );
    back_to(
        &name,
        None,
        &format!(
            "Activated {name}@{} for gateways matching '{}'",
            v["version"],
            v["selector"].as_str().unwrap_or("")
        ),
    )
}

#[derive(Deserialize)]
pub struct RollbackForm {
    #[serde(default)]
    selector: String,
    pack: String,
}

pub async fn rollback(
    State(app): State<AppState>,
    Session(op): Session,
    axum::Form(form): axum::Form<RollbackForm>,
) -> Response {
    let v = api!(
        op,
        packs::rollback(
            State(app),
            op.clone(),
            body(json!({"selector": form.selector}))
        )
    );
    back_to(
        &form.pack,
        None,
        &format!(
            "Rolled back '{}' to {}@{}",
            v["selector"].as_str().unwrap_or(""),
            v["pack"].as_str().unwrap_or(""),
            v["version"]
        ),
    )
}

pub async fn fleet(Session(op): Session) -> Response {
    render("fleet.html", context! { op => op_ctx(&op) })
}

/// The fleet table alone: the fleet page fetches it every two seconds.
pub async fn fleet_table(State(app): State<AppState>, Session(op): Session) -> Response {
    let v = api!(op, fleet::gateways(State(app.clone()), op.clone()));
    let deployments = api!(op, packs::deployments(State(app), op.clone()));
    render(
        "fleet_table.html",
        context! { gateways => v["data"], deployments => deployments["data"] },
    )
}

#[derive(Deserialize)]
pub struct AuditForm {
    key_id: Option<String>,
    role: Option<String>,
    outcome: Option<String>,
    gateway: Option<String>,
    hours: Option<i64>,
}

pub async fn audit(
    State(app): State<AppState>,
    Session(op): Session,
    Query(f): Query<AuditForm>,
) -> Response {
    let hours = f.hours.unwrap_or(24).clamp(1, 24 * 7);
    let from = (OffsetDateTime::now_utc() - time::Duration::hours(hours))
        .format(&Rfc3339)
        .expect("RFC 3339 formats");
    let some = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let q = json!({
        "from": from, "key_id": some(&f.key_id), "role": some(&f.role),
        "outcome": some(&f.outcome), "gateway": some(&f.gateway), "limit": 200,
    });
    let records = api!(
        op,
        audit::query(
            State(app.clone()),
            op.clone(),
            Query(serde_json::from_value(q).expect("audit query"))
        )
    );
    let verified = api!(
        op,
        audit::verify(
            State(app.clone()),
            op.clone(),
            Query(serde_json::from_value(json!({})).expect("verify query"))
        )
    );
    let activity = match Activity::load(&app.pool, hours).await {
        Ok(a) => a,
        Err(e) => return error_page(&op, ApiError::Database(e)),
    };
    let rows: Vec<Value> = records["data"]
        .as_array()
        .map(|rows| rows.iter().map(record_row).collect())
        .unwrap_or_default();
    render(
        "audit.html",
        context! {
            op => op_ctx(&op), rows, verified,
            chart => minijinja::Value::from_safe_string(activity.svg()),
            total => activity.total_requests(), blocks => activity.total_blocks(),
            hours, key_id => f.key_id, role => f.role, outcome => f.outcome, gateway => f.gateway,
        },
    )
}

/// The columns of the audit table.
fn record_row(row: &Value) -> Value {
    let r = &row["record"];
    let decisions: Vec<String> = r["decisions"]
        .as_array()
        .map(|ds| {
            ds.iter()
                .filter(|d| d["outcome"] != "pass")
                .map(|d| {
                    format!(
                        "{}={}",
                        d["policy"].as_str().unwrap_or("?"),
                        d["outcome"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "time": r["time"], "gateway": row["gateway"], "key_id": r["key_id"], "role": r["role"],
        "target": r["target"], "model": r["model"], "status": r["status"],
        "decisions": decisions.join(", "), "tokens": r["usage"]["total_tokens"],
        "latency_ms": r["latency_ms"],
    })
}
