//! What every operator-API handler shares. Its own module so that `auth`
//! (which extracts the operator from a request) and `api` (whose handlers
//! need the operator) do not import each other.

use sqlx::PgPool;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}
