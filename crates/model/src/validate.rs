//! Schema-driven validation: walks a JSON value against a shape of the service model.

use serde_json::{Map, Value};

use crate::problem::Problem;
use crate::service_model::{Shape, ShapeType, service_model, shape_pattern};

/// Where aviary's limits differ from the service model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideTarget {
    /// A member of a structure shape; the member's own shape stays untouched for other uses.
    Member {
        structure: &'static str,
        member: &'static str,
    },
    /// A shape wherever it is used (for lists: the item count).
    Shape(&'static str),
}

/// One deliberate difference from App Mesh's limits, consulted by the validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relaxation {
    pub target: OverrideTarget,
    /// Replaces the model's `min` (value for numbers, item count for lists).
    pub min: Option<i64>,
    /// Replaces the model's `max`.
    pub max: Option<i64>,
    /// Why aviary differs.
    pub reason: &'static str,
}

/// aviary's relaxations of the App Mesh limits. The README's table lists the same rows;
/// a unit test checks that each target exists and that the model's bound really differs.
pub const RELAXATIONS: &[Relaxation] = &[
    Relaxation {
        target: OverrideTarget::Member {
            structure: "WeightedTarget",
            member: "weight",
        },
        min: Some(0),
        max: Some(10_000),
        reason: "finer traffic splits (weights are relative, 0.01% steps)",
    },
    Relaxation {
        target: OverrideTarget::Shape("WeightedTargets"),
        min: Some(1),
        max: Some(100),
        reason: "more targets per route action",
    },
];

/// Validate a JSON value against a named shape of the service model; collects ALL problems.
/// `path` prefixes every problem's path, e.g. `spec`.
pub fn validate_shape(shape: &str, value: &Value, path: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(shape, None, value, path, &mut problems);
    problems
}

/// Validate a request body against an operation's input shape. Only members without a
/// `location` may appear: URI, query-string and header members are not body fields.
pub fn validate_input_body(operation: &str, body: &Value) -> Vec<Problem> {
    let model = service_model();
    let Some(op) = model.operation(operation) else {
        return vec![Problem::new("", format!("unknown operation '{operation}'"))];
    };
    let Some(input) = op.input.as_deref() else {
        return match body {
            Value::Null => Vec::new(),
            Value::Object(map) if map.is_empty() => Vec::new(),
            _ => vec![Problem::new("", "this operation takes no request body")],
        };
    };
    let shape = model
        .shape(input)
        .expect("operation inputs resolve (unit-tested)");
    let mut problems = Vec::new();
    // An absent body is an empty object: required body members are still reported.
    let empty = Map::new();
    let object = match body {
        Value::Null => &empty,
        Value::Object(map) => map,
        other => {
            problems.push(Problem::new("", type_message("an object", other)));
            return problems;
        }
    };
    walk_structure(input, shape, object, "", &mut problems, |m| {
        m.location.is_none()
    });
    problems
}

/// Validate `value` against shape `name`; `via` is the (structure, member) it was reached by.
fn walk(
    name: &str,
    via: Option<(&str, &str)>,
    value: &Value,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let Some(shape) = service_model().shape(name) else {
        problems.push(Problem::new(path, format!("unknown shape '{name}'")));
        return;
    };
    let (min, max) = limits(name, shape, via);
    match shape.kind {
        ShapeType::Structure => match value {
            Value::Object(object) => {
                walk_structure(name, shape, object, path, problems, |_| true);
            }
            other => problems.push(Problem::new(path, type_message("an object", other))),
        },
        ShapeType::List => match value {
            Value::Array(items) => {
                let n = items.len() as i64;
                if let Some(min) = min.filter(|&min| n < min) {
                    problems.push(Problem::new(
                        path,
                        format!("must have at least {}", count(min, "item")),
                    ));
                }
                if let Some(max) = max.filter(|&max| n > max) {
                    problems.push(Problem::new(
                        path,
                        format!("must have at most {}", count(max, "item")),
                    ));
                }
                let item = &shape.member.as_ref().expect("lists have a member").shape;
                for (i, value) in items.iter().enumerate() {
                    walk(item, None, value, &format!("{path}[{i}]"), problems);
                }
            }
            other => problems.push(Problem::new(path, type_message("an array", other))),
        },
        ShapeType::String => match value {
            Value::String(s) => check_string(name, shape, s, min, max, path, problems),
            other => problems.push(Problem::new(path, type_message("a string", other))),
        },
        ShapeType::Integer | ShapeType::Long => {
            let int = match value {
                Value::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from)),
                _ => None,
            };
            let Some(int) = int else {
                problems.push(Problem::new(path, type_message("an integer", value)));
                return;
            };
            let (lo, hi) = match shape.kind {
                ShapeType::Integer => (i128::from(i32::MIN), i128::from(i32::MAX)),
                _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
            };
            if let Some(min) = min.filter(|&min| int < i128::from(min)) {
                problems.push(Problem::new(path, format!("must be at least {min}")));
            } else if let Some(max) = max.filter(|&max| int > i128::from(max)) {
                problems.push(Problem::new(path, format!("must be at most {max}")));
            } else if int < lo || int > hi {
                problems.push(Problem::new(path, format!("must be between {lo} and {hi}")));
            }
        }
        ShapeType::Boolean => {
            if !value.is_boolean() {
                problems.push(Problem::new(path, type_message("a boolean", value)));
            }
        }
        ShapeType::Timestamp => {
            if !value.is_number() {
                problems.push(Problem::new(
                    path,
                    type_message("a timestamp (seconds since the epoch)", value),
                ));
            }
        }
        ShapeType::Double => {
            if !value.is_number() {
                problems.push(Problem::new(path, type_message("a number", value)));
            }
        }
    }
}

/// Check an object against a structure shape. Only members for which `allowed` holds may
/// appear or be required. A `null` member counts as absent.
fn walk_structure(
    name: &str,
    shape: &Shape,
    object: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<Problem>,
    allowed: impl Fn(&crate::service_model::Member) -> bool,
) {
    let mut set = Vec::new();
    for (key, value) in object {
        match shape.members.get(key).filter(|m| allowed(m)) {
            None => {
                let candidates = shape
                    .members
                    .iter()
                    .filter(|(_, m)| allowed(m))
                    .map(|(k, _)| k.as_str());
                let message = match closest(key, candidates) {
                    Some(close) => format!("unknown field '{key}' (did you mean '{close}'?)"),
                    None => format!("unknown field '{key}'"),
                };
                problems.push(Problem::new(path, message));
            }
            Some(_) if value.is_null() => {}
            Some(member) => {
                set.push(key.as_str());
                walk(
                    &member.shape,
                    Some((name, key)),
                    value,
                    &join(path, key),
                    problems,
                );
            }
        }
    }
    for required in &shape.required {
        let member = &shape.members[required];
        if allowed(member) && !set.contains(&required.as_str()) {
            problems.push(Problem::new(join(path, required), "is required"));
        }
    }
    if shape.union && set.len() != 1 {
        let names: Vec<&str> = shape.members.keys().map(String::as_str).collect();
        problems.push(Problem::new(path, exactly_one_message(&names, &set)));
    }
}

fn check_string(
    name: &str,
    shape: &Shape,
    s: &str,
    min: Option<i64>,
    max: Option<i64>,
    path: &str,
    problems: &mut Vec<Problem>,
) {
    let len = s.chars().count() as i64;
    if let Some(min) = min.filter(|&min| len < min) {
        problems.push(Problem::new(
            path,
            format!("must have at least {}", count(min, "character")),
        ));
    }
    if let Some(max) = max.filter(|&max| len > max) {
        problems.push(Problem::new(
            path,
            format!("must have at most {}", count(max, "character")),
        ));
    }
    if !shape.enum_values.is_empty() && !shape.enum_values.iter().any(|v| v == s) {
        problems.push(Problem::new(
            path,
            format!("must be one of: {}", shape.enum_values.join(", ")),
        ));
    }
    if let Some(regex) = shape_pattern(name)
        && !regex.is_match(s)
    {
        problems.push(Problem::new(
            path,
            format!("must match the pattern {}", regex.as_str()),
        ));
    }
}

/// The shape's min/max with aviary's relaxations applied.
fn limits(name: &str, shape: &Shape, via: Option<(&str, &str)>) -> (Option<i64>, Option<i64>) {
    let (mut min, mut max) = (shape.min, shape.max);
    for relaxation in RELAXATIONS {
        let applies = match relaxation.target {
            OverrideTarget::Shape(s) => s == name,
            OverrideTarget::Member { structure, member } => via == Some((structure, member)),
        };
        if applies {
            min = relaxation.min;
            max = relaxation.max;
        }
    }
    (min, max)
}

/// "must set exactly one of: a, b, c" plus what was found.
pub(crate) fn exactly_one_message(names: &[&str], set: &[&str]) -> String {
    let mut message = format!("must set exactly one of: {}", names.join(", "));
    if set.len() > 1 {
        message.push_str(&format!(" (found {})", set.join(", ")));
    }
    message
}

pub(crate) fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_owned()
    } else {
        format!("{path}.{member}")
    }
}

fn count(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn type_message(expected: &str, found: &Value) -> String {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number with a fraction",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("must be {expected}, not {found}")
}

/// The candidate nearest to `key` by edit distance, if it is plausibly a typo of it.
fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    candidates
        .map(|c| (edit_distance(&key, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= 2.min(c.len() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions (`weigth` is one edit from `weight`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests;
