//! query-svc (next issue)
