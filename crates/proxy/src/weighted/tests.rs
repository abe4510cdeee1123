//! Exact boundaries of the weighted choice, and its split over random weight vectors.

use proptest::prelude::*;

use super::WeightedChoice;

#[test]
fn draws_land_on_the_target_whose_range_holds_them() {
    let choice = WeightedChoice::new([90, 0, 10]);
    assert_eq!(choice.total(), 100);
    assert_eq!(choice.pick_with(0), Some(0));
    assert_eq!(choice.pick_with(89), Some(0));
    assert_eq!(choice.pick_with(90), Some(2), "weight 0 is skipped");
    assert_eq!(choice.pick_with(99), Some(2));
    assert_eq!(choice.pick_with(100), None);
    assert_eq!(WeightedChoice::new([0, 0]).pick(), None);
    assert_eq!(WeightedChoice::new([0, 0]).pick_random(), None);
    assert_eq!(WeightedChoice::new([]).pick(), None);
}

#[test]
fn avoiding_a_target_moves_every_draw_to_the_others() {
    let choice = WeightedChoice::new([50, 50, 0]);
    for _ in 0..1000 {
        assert_eq!(choice.pick_avoiding(|i| i == 0), Some(1));
    }
    // Nothing else has weight: the avoided target is better than no answer.
    let single = WeightedChoice::new([100, 0]);
    assert_eq!(single.pick_avoiding(|i| i == 0), Some(0));
}

fn shares(
    choice: &WeightedChoice,
    draws: u32,
    pick: impl Fn(&WeightedChoice) -> usize,
) -> Vec<f64> {
    let mut hits = vec![0u32; choice.len()];
    for _ in 0..draws {
        hits[pick(choice)] += 1;
    }
    hits.iter()
        .map(|&h| f64::from(h) / f64::from(draws))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The rule, for any weights: over 10,000 picks each target's share is within one
    /// percentage point of its weight, and a weight-0 target is never picked.
    #[test]
    fn ten_thousand_picks_follow_the_weights(weights in proptest::collection::vec(
        prop_oneof![Just(0u32), 1u32..=10_000], 1..10)) {
        let choice = WeightedChoice::new(weights.iter().copied());
        let total = choice.total();
        prop_assume!(total > 0);
        let observed = shares(&choice, 10_000, |c| c.pick().unwrap());
        for (i, &w) in weights.iter().enumerate() {
            let expected = f64::from(w) / total as f64;
            if w == 0 {
                prop_assert_eq!(observed[i], 0.0, "weight 0 picked");
            }
            prop_assert!((expected - observed[i]).abs() < 0.01,
                "target {} weight {} of {}: expected {:.4}, observed {:.4}", i, w, total, expected, observed[i]);
        }
    }

    /// The random draws retries use follow the weights too (within 1 point over 100,000
    /// draws: more than 6 standard deviations), and never pick weight 0.
    #[test]
    fn random_draws_follow_the_weights(weights in proptest::collection::vec(
        prop_oneof![Just(0u32), 1u32..=10_000], 1..6)) {
        let choice = WeightedChoice::new(weights.iter().copied());
        let total = choice.total();
        prop_assume!(total > 0);
        let observed = shares(&choice, 100_000, |c| c.pick_random().unwrap());
        for (i, &w) in weights.iter().enumerate() {
            let expected = f64::from(w) / total as f64;
            if w == 0 {
                prop_assert_eq!(observed[i], 0.0, "weight 0 picked");
            }
            prop_assert!((expected - observed[i]).abs() < 0.01);
        }
    }

    /// `pick_with` covers each target exactly `weight` times over all draws in 0..total.
    #[test]
    fn every_draw_maps_to_a_weighted_target(weights in proptest::collection::vec(0u32..50, 1..6)) {
        let choice = WeightedChoice::new(weights.iter().copied());
        let mut hits = vec![0u32; weights.len()];
        for draw in 0..choice.total() {
            hits[choice.pick_with(draw).unwrap()] += 1;
        }
        prop_assert_eq!(hits, weights);
    }
}
