//! The `Store` contract on every store: redb, sled and PostgreSQL (the
//! matrix is `common::suite!`; the suite is `suites/store.rs`). Then what
//! only PostgreSQL has: URLs, connection errors and schema migrations
//! (`suites/store_postgres.rs`).

mod common;

common::suite!(store: "suites/store.rs", postgres: "suites/store_postgres.rs");
