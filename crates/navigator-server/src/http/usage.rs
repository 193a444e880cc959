//! `/v1/usage` (the usage ledger: pages parsed, tokens embedded, requests, retries, cost and what
//! the caches saved, per owner and per document) and `/v1/budgets/{owner}` (monthly soft and hard
//! budgets; raising a hard budget resumes the owner's waiting work at once).

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, timestamp_param};
use super::principal::Principal;
use axum::Json;
use axum::extract::State;
use navigator_domain::{ErrorCode, OwnerId};
use navigator_pipeline::usage::{micro_to_usd, month_start, usd_to_micro};
use navigator_store::{Budget, OwnerScope, UsageTotals};
use serde::Deserialize;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

#[derive(Deserialize)]
pub struct UsageParams {
    /// RFC 3339; default: the first of this month, 00:00 UTC.
    pub from: Option<String>,
    /// RFC 3339, exclusive; default: now.
    pub to: Option<String>,
    /// Operators only: one owner's usage.
    pub owner: Option<String>,
}

fn totals(t: &UsageTotals) -> Value {
    json!({
        "pages": t.pages,
        "tokens": t.tokens,
        "requests": t.requests,
        "retries": t.retries,
        "cost_usd": micro_to_usd(t.cost_micro_usd),
        "saved": {
            "pages": t.saved_pages,
            "tokens": t.saved_tokens,
            "cost_usd": micro_to_usd(t.saved_cost_micro_usd),
        },
    })
}

fn owner_id(raw: &str) -> Result<OwnerId, ApiError> {
    OwnerId::parse(raw).map_err(|_| ApiError::invalid("owner is not a valid owner id"))
}

pub async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(params): ApiQuery<UsageParams>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let from = timestamp_param("from", params.from.as_deref())?.unwrap_or(month_start(now));
    let to = timestamp_param("to", params.to.as_deref())?
        .unwrap_or(now + std::time::Duration::from_secs(1));
    if from >= to {
        return Err(ApiError::invalid("from must be before to"));
    }
    let scope = match (principal.scope(), params.owner.as_deref()) {
        (OwnerScope::All, Some(owner)) => OwnerScope::Owner(owner_id(owner)?),
        (scope, _) => scope,
    };
    let summary = state.store.usage(&scope, from, to).await?;
    let policy = &state.pipeline.usage;
    let mut owners = Vec::with_capacity(summary.owners.len());
    for o in &summary.owners {
        let standing = policy.standing(state.store.as_ref(), &o.owner, now).await?;
        let mut entry = totals(&o.totals);
        entry["owner"] = json!(o.owner);
        entry["budget"] = json!({
            "spent_this_month_usd": micro_to_usd(standing.spent_micro_usd),
            "soft_usd": standing.soft_micro_usd.map(micro_to_usd),
            "hard_usd": standing.hard_micro_usd.map(micro_to_usd),
            "soft_exceeded": standing.soft_exceeded(),
            "hard_exceeded": standing.hard_exceeded(),
        });
        owners.push(entry);
    }
    let documents: Vec<Value> = summary
        .documents
        .iter()
        .map(|d| {
            let mut entry = totals(&d.totals);
            entry["owner"] = json!(d.owner);
            entry["document_id"] = json!(d.document_id);
            entry
        })
        .collect();
    Ok(Json(json!({
        "from": from.format(&Rfc3339).unwrap_or_default(),
        "to": to.format(&Rfc3339).unwrap_or_default(),
        "owners": owners,
        "documents": documents,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    /// Monthly USD; null or absent: none.
    pub soft_usd: Option<f64>,
    pub hard_usd: Option<f64>,
}

/// Operators manage every owner's budget. With auth disabled the single local principal manages
/// its own (there is nobody else); issue 5's permissions replace this rule.
fn may_manage(principal: &Principal, owner: &OwnerId) -> bool {
    matches!(principal.scope(), OwnerScope::All)
        || (principal.unauthenticated_local && principal.owner == *owner)
}

fn budget_view(owner: &OwnerId, soft: Option<i64>, hard: Option<i64>, own: bool) -> Value {
    json!({
        "owner": owner,
        "soft_usd": soft.map(micro_to_usd),
        "hard_usd": hard.map(micro_to_usd),
        "source": if own { "owner" } else { "default" },
    })
}

pub async fn get_budget(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(owner): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_id(&owner)?;
    if !principal.scope().includes(&owner) {
        return Err(ApiError::not_found("budget"));
    }
    let own = state.store.get_budget(&owner).await?;
    let (soft, hard) = state
        .pipeline
        .usage
        .budget(state.store.as_ref(), &owner)
        .await?;
    Ok(Json(budget_view(&owner, soft, hard, own.is_some())))
}

pub async fn put_budget(
    State(state): State<AppState>,
    principal: Principal,
    meta: crate::audit::RequestMeta,
    ApiPath(owner): ApiPath<String>,
    ApiJson(body): ApiJson<BudgetBody>,
) -> Result<Json<Value>, ApiError> {
    let owner = owner_id(&owner)?;
    if !may_manage(&principal, &owner) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "only an operator may set this budget",
        ));
    }
    for (key, value) in [("soft_usd", body.soft_usd), ("hard_usd", body.hard_usd)] {
        if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(ApiError::invalid(format!(
                "{key} must be a non-negative amount"
            )));
        }
    }
    let now = state.clock.now();
    let budget = Budget {
        owner: owner.clone(),
        soft_micro_usd: body.soft_usd.map(usd_to_micro),
        hard_micro_usd: body.hard_usd.map(usd_to_micro),
        updated_at: now,
    };
    state.store.set_budget(&budget).await?;
    state
        .audit
        .record(meta.event(
            principal.actor(),
            crate::audit::Action::BudgetSet,
            "budget",
            Some(owner.to_string()),
            "success",
            json!({"soft_micro_usd": budget.soft_micro_usd, "hard_micro_usd": budget.hard_micro_usd}),
        ))
        .await?;
    let standing = state
        .pipeline
        .usage
        .standing(state.store.as_ref(), &owner, now)
        .await?;
    if !standing.hard_exceeded() {
        let woken = state
            .store
            .wake_waiting(&owner, ErrorCode::BudgetExceeded, now)
            .await?;
        if !woken.is_empty() {
            tracing::info!(owner = %owner, jobs = woken.len(), "budget raised; waiting work resumed");
            state.wake.notify_waiters();
        }
    }
    Ok(Json(budget_view(
        &owner,
        budget.soft_micro_usd,
        budget.hard_micro_usd,
        true,
    )))
}
