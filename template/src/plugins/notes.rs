//! The notes plugin, a small JSON resource on PostgreSQL:
//!
//! - a repository, [`Notes`], made once per worker by an adapter from the worker's pool and
//!   injected into the handlers (`Inject<Notes>`);
//! - routes: `POST /notes`, `GET /notes`, `GET /notes/{id}`, `PUT /notes/{id}`,
//!   `DELETE /notes/{id}`;
//! - errors as JSON: 422 naming the field for invalid input, 404 for an unknown id, 503 when
//!   the database cannot be reached within `[database] acquire_timeout`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use buvar_axum::{BoxError, Inject, Plugin, Prepare, PrepareExt};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;

/// The longest title, in characters.
const TITLE_MAX: usize = 200;
/// The longest body, in characters.
const BODY_MAX: usize = 10_000;
/// The most notes `GET /notes` answers.
const LIST_MAX: i64 = 100;

/// A stored note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Note {
    /// Its id, chosen by the database.
    pub id: i64,
    /// A title of 1 to 200 characters.
    pub title: String,
    /// Text of up to 10,000 characters.
    pub body: String,
}

/// A note as clients send it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// The title.
    pub title: String,
    /// The text; empty when left out.
    #[serde(default)]
    pub body: String,
}

impl NoteInput {
    /// The first field that is invalid, and why.
    pub fn validate(&self) -> Result<(), ApiError> {
        let invalid = |field, message: String| Err(ApiError::Invalid { field, message });
        if self.title.trim().is_empty() {
            return invalid("title", "must not be empty".to_owned());
        }
        if self.title.chars().count() > TITLE_MAX {
            return invalid("title", format!("must be at most {TITLE_MAX} characters"));
        }
        if self.body.chars().count() > BODY_MAX {
            return invalid("body", format!("must be at most {BODY_MAX} characters"));
        }
        Ok(())
    }
}

/// The notes in the database: the repository the handlers get injected.
#[derive(Debug, Clone)]
pub struct Notes {
    pool: Arc<PgPool>,
}

/// The adapter: a repository over the worker's pool.
fn notes(pool: Arc<PgPool>) -> Notes {
    Notes { pool }
}

impl Notes {
    /// Stores a new note.
    pub async fn create(&self, input: &NoteInput) -> Result<Note, sqlx::Error> {
        sqlx::query_as("INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body")
            .bind(&input.title)
            .bind(&input.body)
            .fetch_one(&*self.pool)
            .await
    }

    /// The note with `id`, if there is one.
    pub async fn get(&self, id: i64) -> Result<Option<Note>, sqlx::Error> {
        sqlx::query_as("SELECT id, title, body FROM notes WHERE id = $1")
            .bind(id)
            .fetch_optional(&*self.pool)
            .await
    }

    /// Up to `limit` notes with an id above `after`, by id.
    pub async fn list(&self, after: i64, limit: i64) -> Result<Vec<Note>, sqlx::Error> {
        sqlx::query_as("SELECT id, title, body FROM notes WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&*self.pool)
            .await
    }

    /// Replaces the note with `id`; `None` when there is none.
    pub async fn update(&self, id: i64, input: &NoteInput) -> Result<Option<Note>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE notes SET title = $2, body = $3 WHERE id = $1 RETURNING id, title, body",
        )
        .bind(id)
        .bind(&input.title)
        .bind(&input.body)
        .fetch_optional(&*self.pool)
        .await
    }

    /// Deletes the note with `id`; whether there was one.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM notes WHERE id = $1")
            .bind(id)
            .execute(&*self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// What a request can go wrong with, as a JSON answer.
#[derive(Debug)]
pub enum ApiError {
    /// A field is invalid: 422 naming it.
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not a note: axum's status (400, 415 or 422) and its reason, which names
    /// the field when one has the wrong type.
    Body(JsonRejection),
    /// No note has this id: 404.
    NotFound,
    /// The database cannot be reached now: 503, worth a retry.
    Unavailable,
    /// Anything else: 500; the details go to the log, not to the client.
    Internal,
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        let unreachable = match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // Class 08: connection exceptions; 57P0x: the server is shutting down or starting.
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0")),
            _ => false,
        };
        if unreachable {
            tracing::warn!(error = %err, "the database is unavailable");
            ApiError::Unavailable
        } else {
            tracing::error!(error = %err, "a database query failed");
            ApiError::Internal
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({ "error": "invalid", "field": field, "message": message }),
            ),
            ApiError::Body(rejection) => (
                rejection.status(),
                serde_json::json!({ "error": "invalid body", "message": rejection.body_text() }),
            ),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                serde_json::json!({ "error": "not found" }),
            ),
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "error": "database unavailable, retry later" }),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "internal error" }),
            ),
        };
        (status, Json(body)).into_response()
    }
}

fn checked(input: Result<Json<NoteInput>, JsonRejection>) -> Result<NoteInput, ApiError> {
    let Json(input) = input.map_err(ApiError::Body)?;
    input.validate()?;
    Ok(input)
}

async fn create(
    Inject(notes): Inject<Notes>,
    input: Result<Json<NoteInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let input = checked(input)?;
    Ok((StatusCode::CREATED, Json(notes.create(&input).await?)))
}

async fn read(Inject(notes): Inject<Notes>, Path(id): Path<i64>) -> Result<Json<Note>, ApiError> {
    notes.get(id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// `GET /notes?after=ID`: the next page of notes.
#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    after: i64,
}

async fn list(
    Inject(notes): Inject<Notes>,
    Query(page): Query<Page>,
) -> Result<Json<Vec<Note>>, ApiError> {
    Ok(Json(notes.list(page.after, LIST_MAX).await?))
}

async fn update(
    Inject(notes): Inject<Notes>,
    Path(id): Path<i64>,
    input: Result<Json<NoteInput>, JsonRejection>,
) -> Result<Json<Note>, ApiError> {
    let input = checked(input)?;
    notes
        .update(id, &input)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn delete(Inject(notes): Inject<Notes>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
    if notes.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

async fn prepare(cx: Prepare) -> Result<(), BoxError> {
    cx.adapters().register_infallible(notes).singleton();
    cx.routes(
        Router::new()
            .route("/notes", get(list).post(create))
            .route("/notes/{id}", get(read).put(update).delete(delete)),
    );
    Ok(())
}

/// The plugin, named `notes`; it needs the `database` plugin's pool.
pub fn plugin() -> Plugin {
    Plugin::new("notes", prepare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, body: &str) -> NoteInput {
        NoteInput {
            title: title.to_owned(),
            body: body.to_owned(),
        }
    }

    fn invalid_field(input: &NoteInput) -> Option<&'static str> {
        match input.validate() {
            Err(ApiError::Invalid { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn validation_names_the_first_invalid_field() {
        assert_eq!(invalid_field(&input("groceries", "milk")), None);
        assert_eq!(invalid_field(&input("  ", "")), Some("title"));
        assert_eq!(invalid_field(&input(&"x".repeat(201), "")), Some("title"));
        assert_eq!(
            invalid_field(&input("ok", &"x".repeat(10_001))),
            Some("body")
        );
        assert_eq!(invalid_field(&input(&"é".repeat(200), "")), None);
    }
}
