//! `/api/v1/sources/{code}/{crvs,dr,ibr,social,fr}/…`: the typed registry clients of
//! `dci_client::registries` over HTTP, with the CLI's semantics: `200` with
//! `"outcome": "found"`, `404` with `"outcome": "not_found"` when the registry answered and had
//! nothing, and the API's error shape otherwise (a source of the wrong registry type is a `422`
//! naming `registry_type`). Behind the admin token like every protected route.

use axum::Router;
use axum::extract::State;

use crate::auth::ApiOperator;
use crate::{ApiPath, ApiQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dci_client::registries::{
    CrvsClient, DrClient, IbrClient, IdRef, SocialClient, VitalEventKind,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiJson, ApiResult};
use crate::state::AppState;

/// The registry routes, merged into the protected API router.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/sources/{code}/crvs/person", get(crvs_person))
        .route("/sources/{code}/crvs/verify-birth", get(crvs_verify_birth))
        .route("/sources/{code}/crvs/check-death", get(crvs_check_death))
        .route("/sources/{code}/crvs/events", get(crvs_events))
        .route("/sources/{code}/crvs/subscribe", post(crvs_subscribe))
        .route("/sources/{code}/dr/status", get(dr_status))
        .route("/sources/{code}/dr/details", get(dr_details))
        .route("/sources/{code}/dr/support", get(dr_support))
        .route("/sources/{code}/ibr/enrolled", get(ibr_enrolled))
        .route("/sources/{code}/ibr/dedupe", post(ibr_dedupe))
        .route("/sources/{code}/ibr/enrolments", post(ibr_push))
        .route("/sources/{code}/social/group", get(social_group))
        .route("/sources/{code}/social/member", get(social_member))
        .route("/sources/{code}/fr/farmer", get(fr_farmer))
}

/// `?id=TYPE:VALUE`.
#[derive(Debug, Deserialize)]
pub(crate) struct IdQuery {
    id: Option<String>,
    #[serde(default)]
    via_search: bool,
}

impl IdQuery {
    fn id(&self) -> ApiResult<IdRef> {
        let s = self.id.as_deref().ok_or_else(|| {
            ApiError::field(
                "id",
                "is required: add ?id=TYPE:VALUE, e.g. ?id=UIN:1234567890",
            )
        })?;
        Ok(IdRef::parse(s)?)
    }
}

fn answer<T: Serialize>(code: &str, r: Option<T>) -> ApiResult<Response> {
    Ok(match r {
        Some(r) => ApiJson(json!({
            "source": code,
            "outcome": "found",
            "result": serde_json::to_value(r).map_err(ApiError::internal)?,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            ApiJson(json!({"source": code, "outcome": "not_found", "result": Value::Null})),
        )
            .into_response(),
    })
}

async fn crvs(st: &AppState, code: &str) -> ApiResult<CrvsClient> {
    Ok(st.engine.crvs(code).await?)
}

async fn crvs_person(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, crvs(&st, &code).await?.person(&id).await?)
}

async fn crvs_verify_birth(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, crvs(&st, &code).await?.verify_birth(&id).await?)
}

async fn crvs_check_death(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, crvs(&st, &code).await?.check_death(&id).await?)
}

/// `?type=birth&from=YYYY-MM-DD&to=YYYY-MM-DD`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn crvs_events(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    let kind: VitalEventKind = q
        .kind
        .as_deref()
        .ok_or_else(|| ApiError::field("type", "is required: birth, death, marriage or divorce"))?
        .parse()?;
    let events = crvs(&st, &code)
        .await?
        .events(kind, q.from.as_deref(), q.to.as_deref())
        .await?;
    answer(&code, (!events.is_empty()).then_some(events))
}

/// Body of `POST …/crvs/subscribe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeBody {
    types: Vec<String>,
}

async fn crvs_subscribe(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<SubscribeBody>,
) -> ApiResult<Response> {
    if body.types.is_empty() {
        return Err(ApiError::field(
            "types",
            "give at least one of birth, death, marriage, divorce",
        ));
    }
    let kinds = body
        .types
        .iter()
        .map(|t| t.parse::<VitalEventKind>())
        .collect::<Result<Vec<_>, _>>()?;
    let out = crvs(&st, &code).await?.subscribe(&kinds).await;
    let all_ok = out.iter().all(|o| o.result.is_ok());
    let body = json!({"source": code, "subscriptions": out});
    // Partial success is reported in full: the subscriptions made are not lost.
    Ok(if all_ok {
        ApiJson(body).into_response()
    } else {
        (StatusCode::BAD_GATEWAY, ApiJson(body)).into_response()
    })
}

async fn dr(st: &AppState, code: &str) -> ApiResult<DrClient> {
    Ok(st.engine.dr(code).await?)
}

async fn dr_status(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    let c = dr(&st, &code).await?;
    let r = if q.via_search {
        c.status_by_search(&id).await?
    } else {
        c.status(&id).await?
    };
    answer(&code, r)
}

async fn dr_details(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, dr(&st, &code).await?.details(&id).await?)
}

async fn dr_support(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, dr(&st, &code).await?.disability_support(&id).await?)
}

async fn ibr(st: &AppState, code: &str) -> ApiResult<IbrClient> {
    Ok(st.engine.ibr(code).await?)
}

async fn ibr_enrolled(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, ibr(&st, &code).await?.enrolled(&id).await?)
}

/// Body of `POST …/ibr/dedupe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DedupeBody {
    ids: Vec<String>,
}

async fn ibr_dedupe(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<DedupeBody>,
) -> ApiResult<Response> {
    let ids = body
        .ids
        .iter()
        .map(|s| IdRef::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    // Fails closed: any error above or here is an error response, never "no duplicate".
    let d = ibr(&st, &code).await?.dedupe(&ids).await?;
    answer(&code, d.duplicate.then_some(d))
}

/// Body of `POST …/ibr/enrolments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushBody {
    beneficiaries: Vec<Value>,
}

async fn ibr_push(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiJson(body): ApiJson<PushBody>,
) -> ApiResult<Response> {
    let out = ibr(&st, &code)
        .await?
        .push_enrolments(body.beneficiaries)
        .await?;
    let status = if out.all_accepted {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    Ok((status, ApiJson(json!({"source": code, "result": out}))).into_response())
}

async fn social(st: &AppState, code: &str) -> ApiResult<SocialClient> {
    Ok(st.engine.social(code).await?)
}

async fn social_group(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, social(&st, &code).await?.group(&id).await?)
}

async fn social_member(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    answer(&code, social(&st, &code).await?.member(&id).await?)
}

async fn fr_farmer(
    _: ApiOperator,
    State(st): State<AppState>,
    ApiPath(code): ApiPath<String>,
    ApiQuery(q): ApiQuery<IdQuery>,
) -> ApiResult<Response> {
    let id = q.id()?;
    let c = st.engine.farmer(&code).await?;
    answer(&code, c.farmer(&id).await?)
}
