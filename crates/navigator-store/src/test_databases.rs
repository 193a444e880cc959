//! PostgreSQL test databases, shared by this crate's tests, the server's tests and the
//! benchmarks. Behind the `test-support` feature, which — unlike `conformance` — adds no hooks
//! to the `Store` trait, so building the benchmarks never compiles test hooks into the store.

pub const POSTGRES_URL_VAR: &str = "NAVIGATOR_TEST_DATABASE_URL";

/// The PostgreSQL admin URL tests create their databases through (`scripts/services.sh start`
/// prints it), or `None` when it is not configured — which fails loudly under `CI=true`.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{POSTGRES_URL_VAR} is not set: run scripts/services.sh start");
            }
            None
        }
    }
}

/// `url` with its database name replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Creates an empty database on the server and returns its URL. Databases are not dropped: the
/// services script's `stop` wipes the whole cluster.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    let name = format!("nav_test_{}", uuid::Uuid::now_v7().simple());
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(admin_url)
        .await
        .expect("connect to the admin database");
    // The name is generated here (hex only), never user input.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    sqlx::Connection::close(admin).await.ok();
    with_database(admin_url, &name)
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn database_name_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:55432/postgres", "x"),
            "postgres://u@127.0.0.1:55432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
