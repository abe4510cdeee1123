//! Error windows, ejection length and the ejection budget.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;

fn listener(json: Value) -> typed::Listener {
    typed::view(&json).expect("a listener")
}

fn config() -> OutlierConfig {
    OutlierConfig::from_listener(&listener(json!({
        "portMapping": {"port": 80, "protocol": "http"},
        "outlierDetection": {
            "maxServerErrors": 3,
            "interval": {"unit": "s", "value": 10},
            "baseEjectionDuration": {"unit": "ms", "value": 500},
            "maxEjectionPercent": 50
        }
    })))
    .expect("a complete outlierDetection parses")
}

#[test]
fn parses_the_listener_setting() {
    assert_eq!(
        config(),
        OutlierConfig {
            max_server_errors: 3,
            interval: Duration::from_secs(10),
            base_ejection: Duration::from_millis(500),
            max_ejection_percent: 50,
        }
    );
    let without = listener(json!({"portMapping": {"port": 80, "protocol": "http"}}));
    assert_eq!(OutlierConfig::from_listener(&without), None);
}

#[test]
fn errors_within_one_interval_reach_the_limit_and_older_ones_do_not() {
    let config = config();
    let state = OutlierState::default();
    assert!(!state.record_server_error(&config, 0));
    assert!(!state.record_server_error(&config, 1_000));
    // The window started at 0 and is 10 s long: this error opens a new one.
    assert!(!state.record_server_error(&config, 10_500));
    assert!(!state.record_server_error(&config, 11_000));
    assert!(state.record_server_error(&config, 12_000));
}

#[test]
fn ejection_grows_with_repeated_ejections_and_a_success_resets_it() {
    let config = config();
    let state = OutlierState::default();
    assert_eq!(state.eject(&config, 0), Duration::from_millis(500));
    assert!(state.is_ejected(499));
    assert!(!state.is_ejected(500));
    assert_eq!(state.eject(&config, 500), Duration::from_millis(1000));
    state.record_success(2_000);
    assert_eq!(state.eject(&config, 2_000), Duration::from_millis(500));
}

#[test]
fn at_most_max_ejection_percent_of_endpoints_are_ejected() {
    let config = config();
    assert!(config.may_eject(0, 2), "1 of 2 is 50%");
    assert!(!config.may_eject(1, 2), "2 of 2 is 100%");
    assert!(!config.may_eject(0, 1), "1 of 1 is 100%");
    let all = OutlierConfig {
        max_ejection_percent: 100,
        ..config
    };
    assert!(all.may_eject(0, 1));
}
