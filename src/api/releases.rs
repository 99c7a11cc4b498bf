//! The release and deploy endpoints, as sentry-cli 3 calls them: list and make releases
//! (per organization, or through a project), show, update (finalize) and delete one, and
//! record or list its deploys.

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{ApiError, Call, Reply, body, param, run, shapes, time_field};
use crate::manage::releases::{
    DeployCreate, DeployList, ReleaseCreate, ReleaseDelete, ReleaseFields, ReleaseList,
    ReleaseShow, ReleaseUpdate,
};

pub(super) async fn list(call: &Call<'_>, project: Option<&str>) -> Result<Reply, ApiError> {
    let list = run(
        call,
        ReleaseList {
            project: project.map(str::to_string),
        },
    )
    .await?;
    let org = call.api.organization();
    let wanted = param(call, "query").unwrap_or("");
    Ok(Reply::ok(
        list.iter()
            .filter(|r| r.version.contains(wanted))
            .map(|r| shapes::release(r, org))
            .collect(),
    ))
}

/// A project named in a release body: a slug, or a numeric id.
fn project_names(v: Option<&Value>) -> Result<Option<Vec<String>>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(ApiError::BadRequest(format!(
                    "projects: {other} is not a project slug or id"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ApiError::BadRequest(format!(
            "projects: {other} is not a list of projects"
        ))),
    }
}

pub(super) async fn create(call: &Call<'_>, project: Option<&str>) -> Result<Reply, ApiError> {
    let v: Value = body(call)?;
    let version = text_field(&v, "version")?
        .ok_or_else(|| ApiError::BadRequest("version: this field is required".into()))?;
    let mut projects = project_names(v.get("projects"))?.unwrap_or_default();
    if let Some(p) = project {
        projects.push(p.to_string());
    }
    let op = ReleaseCreate {
        version,
        projects,
        fields: release_fields(&v)?,
    };
    let made = run(call, op).await?;
    let status = if made.created {
        StatusCode::CREATED
    } else {
        StatusCode::ALREADY_REPORTED
    };
    Ok(Reply::with_status(
        status,
        shapes::release(&made.release, call.api.organization()),
    ))
}

pub(super) async fn one(call: &Call<'_>, version: &str) -> Result<Reply, ApiError> {
    let org = call.api.organization().to_string();
    let version = version.to_string();
    match call.method {
        Method::GET => {
            let r = run(call, ReleaseShow { version }).await?;
            Ok(Reply::ok(shapes::release(&r, &org)))
        }
        Method::PUT => {
            let v: Value = body(call)?;
            let op = ReleaseUpdate {
                version,
                projects: project_names(v.get("projects"))?,
                fields: release_fields(&v)?,
            };
            let r = run(call, op).await?;
            Ok(Reply::ok(shapes::release(&r, &org)))
        }
        _ => {
            run(call, ReleaseDelete { version }).await?;
            Ok(Reply::with_status(StatusCode::NO_CONTENT, Value::Null))
        }
    }
}

pub(super) async fn deploys(call: &Call<'_>, version: &str) -> Result<Reply, ApiError> {
    let version = version.to_string();
    if call.method == Method::GET {
        let list = run(call, DeployList { version }).await?;
        return Ok(Reply::ok(list.iter().map(shapes::deploy).collect()));
    }
    let v: Value = body(call)?;
    let environment = text_field(&v, "environment")?
        .ok_or_else(|| ApiError::BadRequest("environment: this field is required".into()))?;
    let op = DeployCreate {
        version,
        environment,
        name: text_field(&v, "name")?,
        url: text_field(&v, "url")?,
        date_started: time(&v, "dateStarted")?,
        date_finished: time(&v, "dateFinished")?,
    };
    let d = run(call, op).await?;
    Ok(Reply::with_status(StatusCode::CREATED, shapes::deploy(&d)))
}

fn text_field(v: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{field}: {other} is not a string"
        ))),
    }
}

/// A time field of a body (RFC 3339), naming the field when it is not one.
fn time(v: &Value, field: &str) -> Result<Option<f64>, ApiError> {
    time_field(field, text_field(v, field)?.as_deref())
}

/// What a release body sets besides its version and projects.
fn release_fields(v: &Value) -> Result<ReleaseFields, ApiError> {
    Ok(ReleaseFields {
        url: text_field(v, "url")?,
        reference: text_field(v, "ref")?,
        date_started: time(v, "dateStarted")?,
        date_released: time(v, "dateReleased")?,
    })
}
