//! Packs, their immutable versions, deployments (which version a gateway
//! group runs) and the read-only targets view.
//!
//! A pack's name is its `pack.name`; the store numbers versions 1, 2, … per
//! pack. Sending a body identical to the latest version creates nothing and
//! answers with that version, so retries are harmless.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_proto::pack;
use sqlx::{Postgres, Transaction};

use crate::auth::{Operator, Role};
use crate::db::{history, rfc3339};
use crate::error::ApiError;
use crate::fleet::Selector;

use super::AppState;

/// Validates a body with the same code as `sluice-gateway check`.
fn validate(body: &str) -> Result<(pack::Pack, Value), ApiError> {
    let loaded = pack::load(body).map_err(|e| ApiError::InvalidPack(e.0))?;
    let parsed = pack::yaml::parse(body)
        .map(|n| n.to_json())
        .unwrap_or(Value::Null);
    Ok((loaded.pack, parsed))
}

/// Validation alone, for the console's "validate" button: the pack, or
/// every error with its position.
pub fn validate_text(body: &str) -> Result<pack::Pack, Vec<sluice_proto::pack::ConfigError>> {
    pack::load(body).map(|l| l.pack).map_err(|e| e.0)
}

async fn pack_id(app: &AppState, name: &str) -> Result<i64, ApiError> {
    sqlx::query_scalar("SELECT id FROM packs WHERE name = $1")
        .bind(name)
        .fetch_optional(&app.pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no pack named '{name}'")))
}

type VersionRow = (i32, String, String, String, time::OffsetDateTime, Value);

fn version_json(name: &str, row: &VersionRow, with_body: bool) -> Value {
    let (version, sha256, author, body, at, parsed) = row;
    let mut v = json!({"pack": name, "version": version, "sha256": sha256,
                       "author": author, "created_at": rfc3339(*at)});
    if with_body {
        v["body"] = json!(body);
        v["parsed"] = parsed.clone();
    }
    v
}

/// Inserts the next version unless the body equals the latest one.
/// Returns (version, created).
async fn insert_version(
    tx: &mut Transaction<'_, Postgres>,
    pack_id: i64,
    p: &pack::Pack,
    body: &str,
    parsed: &Value,
    author: &str,
) -> Result<(i32, bool), ApiError> {
    // Serialise writers of the same pack so version numbers stay dense.
    sqlx::query("SELECT id FROM packs WHERE id = $1 FOR UPDATE")
        .bind(pack_id)
        .execute(&mut **tx)
        .await?;
    let latest: Option<(i32, String)> = sqlx::query_as(
        "SELECT version, sha256 FROM pack_versions WHERE pack_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(pack_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((v, sha)) = &latest
        && *sha == p.sha256
    {
        return Ok((*v, false));
    }
    let next = latest.map_or(1, |(v, _)| v + 1);
    sqlx::query(
        "INSERT INTO pack_versions (pack_id, version, body, parsed, sha256, author) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(pack_id)
    .bind(next)
    .bind(body)
    .bind(parsed)
    .bind(&p.sha256)
    .bind(author)
    .execute(&mut **tx)
    .await?;
    Ok((next, true))
}

/// `POST /v1/packs`: a new pack with its first version.
pub async fn create(
    State(app): State<AppState>,
    op: Operator,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    op.require(Role::Editor, "creating a pack")?;
    let (p, parsed) = validate(&body)?;
    let mut tx = app.pool.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO packs (name, created_by) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id",
    )
    .bind(&p.name)
    .bind(&op.name)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| {
        ApiError::Conflict(format!(
            "a pack named '{}' exists: add a version with POST /v1/packs/{}/versions",
            p.name, p.name
        ))
    })?;
    let (version, _) = insert_version(&mut tx, id, &p, &body, &parsed, &op.name).await?;
    let after = json!({"pack": p.name, "version": version, "sha256": p.sha256});
    history(
        &mut tx,
        &op.name,
        "pack.create",
        &format!("pack/{}", p.name),
        None,
        Some(after.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(after)))
}

/// `POST /v1/packs/{name}/versions`: the body's `pack.name` must be `name`.
pub async fn new_version(
    State(app): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    op.require(Role::Editor, "adding a pack version")?;
    let (p, parsed) = validate(&body)?;
    if p.name != name {
        return Err(ApiError::BadRequest(format!(
            "the body's pack.name is '{}' but the URL names pack '{name}': make them agree",
            p.name
        )));
    }
    let id = pack_id(&app, &name).await?;
    let mut tx = app.pool.begin().await?;
    let (version, created) = insert_version(&mut tx, id, &p, &body, &parsed, &op.name).await?;
    let after = json!({"pack": name, "version": version, "sha256": p.sha256, "created": created});
    if created {
        history(
            &mut tx,
            &op.name,
            "pack.version",
            &format!("pack/{name}"),
            None,
            Some(after.clone()),
        )
        .await?;
    }
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(after)))
}

pub async fn list(State(app): State<AppState>, op: Operator) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "listing packs")?;
    let rows: Vec<(String, time::OffsetDateTime, String, Option<i32>)> = sqlx::query_as(
        "SELECT p.name, p.created_at, p.created_by, max(v.version)
         FROM packs p LEFT JOIN pack_versions v ON v.pack_id = p.id
         GROUP BY p.id ORDER BY p.name",
    )
    .fetch_all(&app.pool)
    .await?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|(name, at, by, latest)| json!({"name": name, "created_at": rfc3339(at), "created_by": by, "latest_version": latest}))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /v1/packs/{name}`: the latest version, with its body.
pub async fn get(
    State(app): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "reading a pack")?;
    let id = pack_id(&app, &name).await?;
    let latest: i32 =
        sqlx::query_scalar("SELECT max(version) FROM pack_versions WHERE pack_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await?;
    let row = fetch_version(&app, &name, latest).await?;
    Ok(Json(version_json(&name, &row, true)))
}

pub async fn versions(
    State(app): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "listing pack versions")?;
    let id = pack_id(&app, &name).await?;
    let rows: Vec<VersionRow> = sqlx::query_as(
        "SELECT version, sha256, author, '' AS body, created_at, 'null'::jsonb AS parsed
         FROM pack_versions WHERE pack_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await?;
    let data: Vec<_> = rows.iter().map(|r| version_json(&name, r, false)).collect();
    Ok(Json(json!({ "data": data })))
}

async fn fetch_version(app: &AppState, name: &str, version: i32) -> Result<VersionRow, ApiError> {
    let id = pack_id(app, name).await?;
    sqlx::query_as(
        "SELECT version, sha256, author, body, created_at, parsed FROM pack_versions
         WHERE pack_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(&app.pool)
    .await?
    .ok_or_else(|| ApiError::NotFound(format!("pack '{name}' has no version {version}")))
}

pub async fn version(
    State(app): State<AppState>,
    op: Operator,
    Path((name, version)): Path<(String, i32)>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "reading a pack version")?;
    let row = fetch_version(&app, &name, version).await?;
    Ok(Json(version_json(&name, &row, true)))
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: i32,
    to: i32,
}

/// `GET /v1/packs/{name}/diff?from=A&to=B`: a unified diff of the bodies.
pub async fn diff(
    State(app): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "diffing pack versions")?;
    let a = fetch_version(&app, &name, q.from).await?;
    let b = fetch_version(&app, &name, q.to).await?;
    let diff = similar::TextDiff::from_lines(&a.3, &b.3)
        .unified_diff()
        .header(&format!("{name}@{}", q.from), &format!("{name}@{}", q.to))
        .to_string();
    Ok(Json(
        json!({"pack": name, "from": q.from, "to": q.to, "diff": diff}),
    ))
}

#[derive(Deserialize)]
pub struct ActivateBody {
    version: i32,
    /// Label selector of the gateway group; empty (the default) = every gateway.
    #[serde(default)]
    selector: String,
}

/// Points a gateway group at a version; records the activation.
async fn set_deployment(
    tx: &mut Transaction<'_, Postgres>,
    selector: &Selector,
    pack_id: i64,
    version: i32,
    actor: &str,
) -> Result<Option<Value>, ApiError> {
    let before: Option<(String, i32)> = sqlx::query_as(
        "SELECT p.name, d.version FROM deployments d JOIN packs p ON p.id = d.pack_id WHERE d.selector = $1 FOR UPDATE OF d",
    )
    .bind(selector.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO deployments (selector, pack_id, version, activated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (selector) DO UPDATE SET pack_id = $2, version = $3, activated_by = $4, activated_at = now()",
    )
    .bind(selector.as_str())
    .bind(pack_id)
    .bind(version)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO deployment_history (selector, pack_id, version, activated_by) VALUES ($1, $2, $3, $4)",
    )
    .bind(selector.as_str())
    .bind(pack_id)
    .bind(version)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(before.map(|(p, v)| json!({"selector": selector.as_str(), "pack": p, "version": v})))
}

/// `POST /v1/packs/{name}/activate {"version": N, "selector": "env=prod"}`.
pub async fn activate(
    State(app): State<AppState>,
    op: Operator,
    Path(name): Path<String>,
    Json(body): Json<ActivateBody>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Editor, "activating a pack version")?;
    let selector = Selector::parse(&body.selector).map_err(ApiError::BadRequest)?;
    let id = pack_id(&app, &name).await?;
    fetch_version(&app, &name, body.version).await?;
    let mut tx = app.pool.begin().await?;
    let before = set_deployment(&mut tx, &selector, id, body.version, &op.name).await?;
    let after = json!({"selector": selector.as_str(), "pack": name, "version": body.version});
    history(
        &mut tx,
        &op.name,
        "deployment.activate",
        &format!("deployment/{}", selector.as_str()),
        before,
        Some(after.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Deserialize)]
pub struct RollbackBody {
    #[serde(default)]
    selector: String,
}

/// `POST /v1/deployments/rollback {"selector": …}`: re-activates the version
/// that was active before the current activation of that group.
pub async fn rollback(
    State(app): State<AppState>,
    op: Operator,
    Json(body): Json<RollbackBody>,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Editor, "rolling back a deployment")?;
    let selector = Selector::parse(&body.selector).map_err(ApiError::BadRequest)?;
    let mut tx = app.pool.begin().await?;
    sqlx::query("SELECT 1 FROM deployments WHERE selector = $1 FOR UPDATE")
        .bind(selector.as_str())
        .execute(&mut *tx)
        .await?;
    let last_two: Vec<(i64, i32, String)> = sqlx::query_as(
        "SELECT h.pack_id, h.version, p.name FROM deployment_history h JOIN packs p ON p.id = h.pack_id
         WHERE h.selector = $1 ORDER BY h.id DESC LIMIT 2",
    )
    .bind(selector.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let [_, (pack_id, version, name)] = last_two.as_slice() else {
        return Err(ApiError::Conflict(format!(
            "deployment '{}' has no earlier activation to roll back to",
            selector.as_str()
        )));
    };
    let before = set_deployment(&mut tx, &selector, *pack_id, *version, &op.name).await?;
    let after = json!({"selector": selector.as_str(), "pack": name, "version": version});
    history(
        &mut tx,
        &op.name,
        "deployment.rollback",
        &format!("deployment/{}", selector.as_str()),
        before,
        Some(after.clone()),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(after))
}

pub async fn deployments(
    State(app): State<AppState>,
    op: Operator,
) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "listing deployments")?;
    let rows: Vec<(String, String, i32, time::OffsetDateTime, String)> = sqlx::query_as(
        "SELECT d.selector, p.name, d.version, d.activated_at, d.activated_by
         FROM deployments d JOIN packs p ON p.id = d.pack_id ORDER BY d.selector",
    )
    .fetch_all(&app.pool)
    .await?;
    let data: Vec<_> = rows
        .into_iter()
        .map(|(s, p, v, at, by)| json!({"selector": s, "pack": p, "version": v, "activated_at": rfc3339(at), "activated_by": by}))
        .collect();
    Ok(Json(json!({ "data": data })))
}

/// `GET /v1/targets`: the provider targets of every deployed pack version,
/// with their secret references (names of variables, never values).
/// Targets are edited as part of a pack, so a target change is reviewed,
/// versioned and rolled back with the policies it serves.
pub async fn targets(State(app): State<AppState>, op: Operator) -> Result<Json<Value>, ApiError> {
    op.require(Role::Viewer, "listing targets")?;
    let rows: Vec<(String, String, i32, String)> = sqlx::query_as(
        "SELECT d.selector, p.name, d.version, v.body FROM deployments d
         JOIN packs p ON p.id = d.pack_id
         JOIN pack_versions v ON v.pack_id = d.pack_id AND v.version = d.version
         ORDER BY d.selector",
    )
    .fetch_all(&app.pool)
    .await?;
    let mut data = Vec::new();
    for (selector, name, version, body) in rows {
        // Stored versions validated when written; a schema change since
        // could make one fail, which must not hide the others.
        let Ok(loaded) = pack::load(&body) else {
            continue;
        };
        for t in &loaded.pack.targets {
            data.push(json!({
                "selector": selector, "pack": name, "version": version,
                "id": t.id, "provider": t.provider, "model": t.model,
                "base_url": t.base_url, "secret_env": t.secret_env,
            }));
        }
    }
    Ok(Json(json!({ "data": data })))
}
