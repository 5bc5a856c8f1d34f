//! The metric catalogue: what every service says it records is what the code records, and the
//! Grafana dashboard charts only those. (Here, because the all-in-one sees every service.)

use platform::metrics::Metric;

/// Every metric described: those of every HTTP server and each service's own.
fn catalogue() -> Vec<Metric> {
    [platform::metrics::SHARED, command_svc::METRICS, projector::METRICS, query_svc::METRICS].concat()
}

/// Every metric the workspace records is in the catalogue (so it is described and documented),
/// once, and every one of the catalogue is recorded somewhere.
#[test]
fn the_metrics_catalogue_is_the_set_the_code_records() {
    fn sources(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                sources(&path, found);
            } else if name.ends_with(".rs") {
                found.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut files = Vec::new();
    sources(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")), &mut files);
    let mut recorded = std::collections::BTreeSet::new();
    for file in &files {
        for macro_call in ["metrics::counter!(\"", "metrics::gauge!(\"", "metrics::histogram!(\""] {
            for (at, _) in file.match_indices(macro_call) {
                let rest = &file[at + macro_call.len()..];
                recorded.insert(rest[..rest.find('"').unwrap()].to_string());
            }
        }
    }
    let catalogue = catalogue();
    let described: std::collections::BTreeSet<String> = catalogue.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(described.len(), catalogue.len(), "each metric described once");
    assert_eq!(recorded, described);
}

/// The Grafana dashboard in `docs/` charts only metrics of the catalogue.
#[test]
fn the_dashboard_charts_only_metrics_that_exist() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let promql = ["sum", "by", "rate", "max", "min", "increase", "histogram_quantile", "le"];
    let labels = ["route", "outcome", "kind", "reason", "action", "window"];
    let catalogue = catalogue();
    let mut charted = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // Label values in quotes and range durations in brackets are not names.
            let unquoted: String = expr.split('"').step_by(2).collect::<Vec<_>>().join(" ");
            let unquoted: String =
                unquoted.split('[').map(|part| part.split_once(']').map_or(part, |(_, rest)| rest)).collect();
            for word in unquoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.is_empty() || word.parse::<f64>().is_ok() || promql.contains(&word) || labels.contains(&word) {
                    continue;
                }
                let name = word.strip_suffix("_bucket").unwrap_or(word);
                assert!(catalogue.iter().any(|(known, _, _)| *known == name), "{expr}: {name} is not a metric");
                charted += 1;
            }
        }
    }
    assert!(charted >= 20, "{charted}");
}
