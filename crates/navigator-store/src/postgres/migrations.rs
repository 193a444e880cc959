//! Hand-rolled versioned migrations, numbered and described exactly like the SQLite ones (same
//! version, same description, backend-specific SQL), so `migration_status` reads the same on both
//! backends.

use super::db_err;
use super::rows::to_ms;
use crate::{MigrationInfo, StoreResult};
use sqlx::{PgConnection, PgPool, Row};

pub(super) struct Migration {
    pub version: i64,
    pub description: &'static str,
    pub sql: &'static str,
}

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "documents and jobs",
        sql: include_str!("../../migrations/postgres/0001_documents_and_jobs.sql"),
    },
    Migration {
        version: 2,
        description: "chunks and embeddings",
        sql: include_str!("../../migrations/postgres/0002_chunks_and_embeddings.sql"),
    },
    Migration {
        version: 3,
        description: "keyword search",
        sql: include_str!("../../migrations/postgres/0003_keyword_search.sql"),
    },
    Migration {
        version: 4,
        description: "remote parsing, usage and budgets",
        sql: include_str!("../../migrations/postgres/0004_remote_parsing_usage_and_budgets.sql"),
    },
    Migration {
        version: 5,
        description: "webhook delivery pruning",
        sql: include_str!("../../migrations/postgres/0005_webhook_delivery_pruning.sql"),
    },
    Migration {
        version: 6,
        description: "api keys, data keys and the audit log",
        sql: include_str!(
            "../../migrations/postgres/0006_api_keys_data_keys_and_the_audit_log.sql"
        ),
    },
];

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version     BIGINT PRIMARY KEY,
    description TEXT   NOT NULL,
    applied_at  BIGINT NOT NULL
)";

/// Serialises migrators of one database (an arbitrary constant: "navigator" in ASCII).
const MIGRATION_LOCK: i64 = 0x6e61_7669_6761_746f;

async fn lock(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Applies every pending migration, each in its own transaction holding a transaction-level
/// advisory lock, so two processes migrating at once serialise and the second one finds nothing
/// to do. PostgreSQL DDL is transactional: a failing migration leaves no trace.
pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    lock(&mut tx).await?;
    sqlx::query(CREATE_LEDGER)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;

    for migration in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(db_err)?;
        lock(&mut tx).await?;
        if is_applied(&mut tx, migration.version).await? {
            tx.commit().await.map_err(db_err)?;
            continue;
        }
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.description)
        .bind(to_ms(time::OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(
            version = migration.version,
            description = migration.description,
            "applied migration"
        );
    }
    Ok(())
}

async fn is_applied(conn: &mut PgConnection, version: i64) -> StoreResult<bool> {
    let row = sqlx::query("SELECT 1 FROM schema_migrations WHERE version = $1")
        .bind(version)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    Ok(row.is_some())
}

pub(super) async fn status(pool: &PgPool) -> StoreResult<Vec<MigrationInfo>> {
    let ledger_exists: bool =
        sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(db_err)?;
    let applied: Vec<i64> = if ledger_exists {
        sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|row| row.try_get::<i64, _>("version"))
            .collect::<Result<_, _>>()
            .map_err(db_err)?
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.to_owned(),
            applied: applied.contains(&m.version),
        })
        .collect())
}
