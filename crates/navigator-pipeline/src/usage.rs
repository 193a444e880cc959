//! The usage ledger and budgets (SPEC §7, COD-001/002): what each owner's documents cost in pages
//! parsed and tokens embedded, priced from a table in config, and the soft and hard monthly
//! budgets that gate new work.
//!
//! Money is kept in integer micro-dollars so sums are exact; prices are USD per million tokens
//! (which is exactly micro-dollars per token) and USD per page.

use navigator_domain::{Clock, DocumentId, ErrorCode, JobId, OwnerId};
use navigator_store::{Budget, Store, StoreResult, UsageKind, UsageRecord};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::warn;

/// A provider's prices.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Price {
    pub usd_per_million_tokens: f64,
    pub usd_per_page: f64,
}

/// Prices by provider: an embedder model id or a parser name. Unlisted providers are free.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable(pub BTreeMap<String, Price>);

impl PriceTable {
    fn price(&self, provider: &str) -> Price {
        self.0.get(provider).copied().unwrap_or_default()
    }

    /// Cost of `tokens` embedded by `provider`, in micro-dollars.
    pub fn tokens_cost(&self, provider: &str, tokens: u64) -> i64 {
        micro(tokens as f64 * self.price(provider).usd_per_million_tokens)
    }

    /// Cost of `pages` parsed by `provider`, in micro-dollars.
    pub fn pages_cost(&self, provider: &str, pages: u64) -> i64 {
        micro(pages as f64 * self.price(provider).usd_per_page * 1e6)
    }
}

fn micro(value: f64) -> i64 {
    if value.is_finite() {
        value.round() as i64
    } else {
        0
    }
}

/// Converts dollars to micro-dollars (budgets in config and the API are in dollars).
pub fn usd_to_micro(usd: f64) -> i64 {
    micro(usd * 1e6)
}

pub fn micro_to_usd(micro: i64) -> f64 {
    micro as f64 / 1e6
}

/// Budget policy: the defaults from config (an owner's own budget in the store replaces them),
/// and how often work held by a hard budget is re-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UsagePolicy {
    pub prices: PriceTable,
    pub default_soft_micro_usd: Option<i64>,
    pub default_hard_micro_usd: Option<i64>,
    pub recheck: Duration,
}

impl Default for UsagePolicy {
    fn default() -> Self {
        Self {
            prices: PriceTable::default(),
            default_soft_micro_usd: None,
            default_hard_micro_usd: None,
            recheck: Duration::from_secs(60),
        }
    }
}

/// An owner's budget standing this month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStanding {
    pub spent_micro_usd: i64,
    pub soft_micro_usd: Option<i64>,
    pub hard_micro_usd: Option<i64>,
}

impl BudgetStanding {
    pub fn soft_exceeded(&self) -> bool {
        self.soft_micro_usd
            .is_some_and(|soft| self.spent_micro_usd >= soft)
    }

    /// New work waits while this holds.
    pub fn hard_exceeded(&self) -> bool {
        self.hard_micro_usd
            .is_some_and(|hard| self.spent_micro_usd >= hard)
    }
}

/// Midnight UTC on the first day of `now`'s month: budgets are monthly.
pub fn month_start(now: OffsetDateTime) -> OffsetDateTime {
    let now = now.to_offset(time::UtcOffset::UTC);
    now.replace_day(1)
        .expect("day 1 exists in every month")
        .replace_time(time::Time::MIDNIGHT)
}

impl UsagePolicy {
    /// The owner's effective budget: their own if one was set, else the configured defaults.
    pub async fn budget(
        &self,
        store: &dyn Store,
        owner: &OwnerId,
    ) -> StoreResult<(Option<i64>, Option<i64>)> {
        Ok(match store.get_budget(owner).await? {
            Some(Budget {
                soft_micro_usd,
                hard_micro_usd,
                ..
            }) => (soft_micro_usd, hard_micro_usd),
            None => (self.default_soft_micro_usd, self.default_hard_micro_usd),
        })
    }

    pub async fn standing(
        &self,
        store: &dyn Store,
        owner: &OwnerId,
        now: OffsetDateTime,
    ) -> StoreResult<BudgetStanding> {
        let (soft, hard) = self.budget(store, owner).await?;
        let spent = if soft.is_some() || hard.is_some() {
            store.owner_spend(owner, month_start(now)).await?
        } else {
            0
        };
        Ok(BudgetStanding {
            spent_micro_usd: spent,
            soft_micro_usd: soft,
            hard_micro_usd: hard,
        })
    }
}

/// What one piece of work consumed, before pricing.
#[derive(Debug, Clone, Default)]
pub struct Consumed {
    pub pages: u64,
    pub tokens: u64,
    pub requests: u64,
    pub retries: u64,
    pub saved_pages: u64,
    pub saved_tokens: u64,
}

/// Who the work was for.
#[derive(Debug, Clone, Copy)]
pub struct Attribution<'a> {
    pub owner: &'a OwnerId,
    pub document_id: DocumentId,
    pub job_id: JobId,
}

/// Prices `consumed`, appends it to the ledger and emits the soft-budget event when this entry
/// crosses the owner's soft budget. Nothing is recorded for work that consumed nothing.
pub async fn record(
    store: &dyn Store,
    policy: &UsagePolicy,
    clock: &dyn Clock,
    who: Attribution<'_>,
    kind: UsageKind,
    provider: &str,
    consumed: Consumed,
) -> StoreResult<()> {
    let c = &consumed;
    if c.pages + c.tokens + c.requests + c.retries + c.saved_pages + c.saved_tokens == 0 {
        return Ok(());
    }
    let prices = &policy.prices;
    let cost = prices.pages_cost(provider, c.pages) + prices.tokens_cost(provider, c.tokens);
    let saved =
        prices.pages_cost(provider, c.saved_pages) + prices.tokens_cost(provider, c.saved_tokens);
    let now = clock.now();
    store
        .record_usage(&UsageRecord {
            owner: who.owner.clone(),
            document_id: Some(who.document_id),
            job_id: Some(who.job_id),
            kind,
            provider: provider.to_owned(),
            model: provider.to_owned(),
            pages: c.pages,
            tokens: c.tokens,
            requests: c.requests,
            retries: c.retries,
            cost_micro_usd: cost,
            saved_pages: c.saved_pages,
            saved_tokens: c.saved_tokens,
            saved_cost_micro_usd: saved,
            at: now,
        })
        .await?;
    let kind_label = kind.as_str();
    metrics::counter!("navigator_usage_pages_total", "kind" => kind_label).increment(c.pages);
    metrics::counter!("navigator_usage_tokens_total", "kind" => kind_label).increment(c.tokens);
    metrics::counter!("navigator_usage_cost_micro_usd_total", "kind" => kind_label)
        .increment(cost.max(0) as u64);
    metrics::counter!("navigator_usage_saved_micro_usd_total", "kind" => kind_label)
        .increment(saved.max(0) as u64);
    if cost > 0 {
        let standing = policy.standing(store, who.owner, now).await?;
        if let Some(soft) = standing.soft_micro_usd
            && standing.spent_micro_usd >= soft
            && standing.spent_micro_usd - cost < soft
        {
            metrics::counter!("navigator_budget_soft_exceeded_total").increment(1);
            warn!(
                owner = %who.owner,
                spent_micro_usd = standing.spent_micro_usd,
                soft_micro_usd = soft,
                "owner crossed the soft monthly budget"
            );
        }
    }
    Ok(())
}

/// The error a job waiting on a hard budget carries (its reason for waiting).
pub fn budget_exceeded() -> navigator_store::JobError {
    navigator_store::JobError {
        code: ErrorCode::BudgetExceeded,
        message: "the owner's monthly hard budget is spent; raise it to resume".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact_micro_dollars() {
        let mut table = BTreeMap::new();
        table.insert(
            "openai/m/8".to_owned(),
            Price {
                usd_per_million_tokens: 0.02,
                usd_per_page: 0.0,
            },
        );
        table.insert(
            "llamaparse".to_owned(),
            Price {
                usd_per_million_tokens: 0.0,
                usd_per_page: 0.003,
            },
        );
        let prices = PriceTable(table);
        assert_eq!(prices.tokens_cost("openai/m/8", 1_000_000), 20_000);
        assert_eq!(prices.tokens_cost("openai/m/8", 150), 3);
        assert_eq!(prices.pages_cost("llamaparse", 10), 30_000);
        assert_eq!(prices.pages_cost("unlisted", 10), 0);
        assert_eq!(usd_to_micro(1.5), 1_500_000);
    }

    #[test]
    fn budgets_are_monthly_from_the_first_at_midnight_utc() {
        let now = time::macros::datetime!(2026-11-26 16:45:12 UTC);
        assert_eq!(
            month_start(now),
            time::macros::datetime!(2026-11-01 00:00:00 UTC)
        );
    }

    #[test]
    fn a_budget_is_exceeded_once_spend_reaches_it() {
        let standing = BudgetStanding {
            spent_micro_usd: 100,
            soft_micro_usd: Some(50),
            hard_micro_usd: Some(100),
        };
        assert!(standing.soft_exceeded() && standing.hard_exceeded());
        let none = BudgetStanding {
            spent_micro_usd: 100,
            soft_micro_usd: None,
            hard_micro_usd: None,
        };
        assert!(!none.soft_exceeded() && !none.hard_exceeded());
    }
}
