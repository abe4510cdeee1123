//! Reading a Prometheus query's answer as the one number a check needs.

use serde_json::json;

use super::*;

#[test]
fn a_query_answer_is_one_number_or_says_why_not() {
    let vector = |result: Value| json!({"status": "success", "data": {"resultType": "vector", "result": result}});
    let sample = |v: &str| json!({"metric": {}, "value": [1.0, v]});
    assert_eq!(number_of(&vector(json!([sample("0.25")]))), Ok(0.25));
    let scalar =
        json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}});
    assert_eq!(number_of(&scalar), Ok(3.0));
    assert_eq!(
        number_of(&vector(json!([]))),
        Err("the query gave no data".into())
    );
    let two = number_of(&vector(json!([sample("1"), sample("2")]))).unwrap_err();
    assert!(two.contains("2 series"), "{two}");
    let nan = number_of(&vector(json!([sample("NaN")]))).unwrap_err();
    assert!(nan.contains("not a finite number"), "{nan}");
    let failed = json!({"status": "error", "error": "parse error at char 3"});
    assert_eq!(
        number_of(&failed),
        Err("prometheus: parse error at char 3".into())
    );
    let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
    assert!(number_of(&matrix).unwrap_err().contains("matrix"));
}
