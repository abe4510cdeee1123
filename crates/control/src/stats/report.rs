//! What a stats report must be to be counted: a bounded number of distinct, existing nodes with
//! counts that add up.
//!
//! A report is taken whole or not at all: one that names a node the mesh does not have is
//! refused naming its unknown nodes (the first 20, and how many more), and nothing in it is
//! counted. Counting the known part would answer 2xx to a request that was partly wrong;
//! proxies drop a refused report (see `proxy::push`) instead of resending it, so a node deleted
//! under a proxy costs one report.

use std::collections::HashSet;

use model::Problem;
use model::wire::{
    LATENCY_BUCKETS_MS, MAX_REPORT_NODES, MAX_REPORT_REQUESTS, NodeStats, StatsReport,
};

use super::known::MeshNodes;
use crate::error::ApiError;

/// Problems (or unknown nodes) named in one answer; the rest are counted, so that the
/// message of a refused flood stays small.
const MAX_NAMED: usize = 20;

/// Size, names and counts of a report, before anything is looked up.
pub fn check_report(report: &StatsReport) -> Result<(), ApiError> {
    let problems = report_problems(report);
    if problems.is_empty() {
        return Ok(());
    }
    let total = problems.len();
    let named: Vec<String> = problems
        .iter()
        .take(MAX_NAMED)
        .map(ToString::to_string)
        .collect();
    let plural = if total == 1 { "" } else { "s" };
    Err(ApiError::BadRequest(format!(
        "{total} validation error{plural} detected: {}{}",
        named.join("; "),
        and_more(total)
    )))
}

/// Every node of the report must be a virtual node of the mesh, and every workload a
/// workload of its node.
pub fn check_known(mesh: &str, report: &StatsReport, known: &MeshNodes) -> Result<(), ApiError> {
    let unknown: Vec<&str> = report
        .nodes
        .iter()
        .map(|node| node.virtual_node.as_str())
        .filter(|name| !known.contains(name))
        .collect();
    if unknown.is_empty() {
        let strays: Vec<String> = report
            .nodes
            .iter()
            .filter_map(|n| n.workload.as_deref().map(|w| (n.virtual_node.as_str(), w)))
            .filter(|(node, workload)| known.workload_node(workload) != Some(*node))
            .map(|(node, workload)| format!("'{workload}' of '{node}'"))
            .collect();
        if strays.is_empty() {
            return Ok(());
        }
        let named: Vec<&str> = strays.iter().take(MAX_NAMED).map(String::as_str).collect();
        return Err(ApiError::BadRequest(format!(
            "nodes: no workload {}{} in mesh '{mesh}'; nothing in this report was counted",
            named.join(", "),
            and_more(strays.len())
        )));
    }
    let named: Vec<String> = unknown
        .iter()
        .take(MAX_NAMED)
        .map(|name| format!("'{name}'"))
        .collect();
    let (what, verb) = if unknown.len() == 1 {
        ("virtual node", "does")
    } else {
        ("virtual nodes", "do")
    };
    Err(ApiError::BadRequest(format!(
        "nodes: {what} {}{} {verb} not exist in mesh '{mesh}'; nothing in this report was counted",
        named.join(", "),
        and_more(unknown.len())
    )))
}

fn and_more(total: usize) -> String {
    match total.saturating_sub(MAX_NAMED) {
        0 => String::new(),
        more => format!(" and {more} more"),
    }
}

fn report_problems(report: &StatsReport) -> Vec<Problem> {
    if report.nodes.len() > MAX_REPORT_NODES {
        // Looking into each of too many entries is the work the limit is there to spare.
        return vec![Problem::new(
            "nodes",
            format!(
                "must have at most {MAX_REPORT_NODES} entries, got {}",
                report.nodes.len()
            ),
        )];
    }
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (i, node) in report.nodes.iter().enumerate() {
        let path = format!("nodes[{i}]");
        let name_path = format!("{path}.virtualNode");
        problems.extend(model::validate_name(&name_path, &node.virtual_node));
        if let Some(workload) = &node.workload {
            problems.extend(model::validate_name(&format!("{path}.workload"), workload));
        }
        if !seen.insert((node.virtual_node.as_str(), node.workload.as_deref())) {
            let what = match &node.workload {
                Some(workload) => format!("workload '{workload}' of '{}'", node.virtual_node),
                None => format!("'{}'", node.virtual_node),
            };
            problems.push(Problem::new(name_path, format!("{what} is listed twice")));
        }
        problems.extend(count_problems(&path, node));
    }
    problems
}

/// Each class is part of `requests`, and so is their sum; the latency buckets count requests
/// too. Sums are checked, so no report can overflow them.
fn count_problems(path: &str, node: &NodeStats) -> Vec<Problem> {
    let mut problems = Vec::new();
    let requests = node.requests;
    if requests > MAX_REPORT_REQUESTS {
        problems.push(Problem::new(
            format!("{path}.requests"),
            format!("must be at most {MAX_REPORT_REQUESTS}"),
        ));
    }
    let classes = [
        ("status2xx", node.status_2xx),
        ("status4xx", node.status_4xx),
        ("status5xx", node.status_5xx),
        ("failures", node.failures),
    ];
    let mut class_over = false;
    for (field, count) in classes {
        if count > requests {
            class_over = true;
            problems.push(Problem::new(
                format!("{path}.{field}"),
                format!("{count} is more than requests ({requests})"),
            ));
        }
    }
    match classes
        .iter()
        .try_fold(0u64, |sum, (_, count)| sum.checked_add(*count))
    {
        None => problems.push(Problem::new(
            path,
            "status2xx + status4xx + status5xx + failures overflows",
        )),
        Some(sum) if sum > requests && !class_over => problems.push(Problem::new(
            path,
            format!("status2xx + status4xx + status5xx + failures is {sum}, more than requests ({requests})"),
        )),
        Some(_) => {}
    }
    problems.extend(latency_problem(path, node));
    problems
}

fn latency_problem(path: &str, node: &NodeStats) -> Option<Problem> {
    let field = format!("{path}.latencyBuckets");
    let buckets = LATENCY_BUCKETS_MS.len() + 1;
    if node.latency_buckets.len() > buckets {
        return Some(Problem::new(
            field,
            format!(
                "must have at most {buckets} items, got {}",
                node.latency_buckets.len()
            ),
        ));
    }
    match node
        .latency_buckets
        .iter()
        .try_fold(0u64, |sum, count| sum.checked_add(*count))
    {
        None => Some(Problem::new(field, "the counts overflow when added up")),
        Some(sum) if sum > node.requests => Some(Problem::new(
            field,
            format!(
                "count {sum} requests, more than requests ({})",
                node.requests
            ),
        )),
        Some(_) => None,
    }
}
