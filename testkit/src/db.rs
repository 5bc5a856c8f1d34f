//! A fresh PostgreSQL database per test, dropped afterwards.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Executor as _};
use uuid::Uuid;

/// The PostgreSQL server tests create their databases on: `TEST_DATABASE_URL`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database, dropped (with its connections) when this value is dropped.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A URL to it, for configuration.
    pub url: String,
    admin: PgConnectOptions,
}

impl TestDb {
    /// Creates `sbt_<uuid>` on the admin server.
    pub async fn new() -> Self {
        let admin: PgConnectOptions = admin_database_url().parse().expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let name = format!("sbt_{}", Uuid::new_v4().simple());
        let mut connection = admin.connect().await.expect("PostgreSQL is reachable (see README: scripts/test)");
        connection.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        let url = with_path(&admin_database_url(), &name);
        Self { name, url, admin }
    }

    /// The URL of this database reached through `port` on 127.0.0.1 (a [`Proxy`]).
    pub fn url_via(&self, port: u16) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        url.to_string()
    }

    /// A pool on this database.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new().max_connections(8).connect_with(self.admin.clone().database(&self.name)).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a fresh thread may block on its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                let mut connection = admin.connect().await?;
                connection.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("testkit: could not drop test database {}", self.name);
        }
    }
}

fn with_path(url: &str, database: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_path(database);
    url.to_string()
}
