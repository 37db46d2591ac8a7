//! The platform's own health scores, with the contract's constants (reference §7): the sleep
//! score (four pillars) and the resilience score (coefficient of variation of nightly HRV).

use crate::sleep::SleepStage;

// Sleep score weights and targets.
pub const W_DURATION: f64 = 0.40;
pub const W_STAGES: f64 = 0.20;
pub const W_CONSISTENCY: f64 = 0.20;
pub const W_INTERRUPTIONS: f64 = 0.20;
const STAGE_TARGET_MIN: f64 = 90.0;
const SHORT_K: f64 = -1.5;
const SHORT_M: f64 = 5.0;
const SHORT_A: f64 = 7.0;
const LONG_K: f64 = 0.8;
const LONG_M: f64 = 11.0;
const LONG_A: f64 = 9.0;
const LONG_FLOOR: i64 = 50;
const EXP_CAP: f64 = 709.0;
const CONSISTENCY_TOLERANCE_MIN: f64 = 15.0;
const CONSISTENCY_SPAN_MIN: f64 = 105.0;
const EARLY_MAX_PENALTY: f64 = 20.0;
const WASO_FREE_MIN: f64 = 20.0;
const WASO_SPAN_MIN: f64 = 70.0;
const WASO_POINTS: f64 = 80.0;
const FREQUENCY_POINTS: f64 = 20.0;
const AWAKENING_MIN: f64 = 5.0;
/// Prior bedtimes considered for consistency.
pub const HISTORY_NIGHTS: usize = 14;

// Resilience.
pub const LOOKBACK_DAYS: i64 = 7;
pub const MIN_DAYS: usize = 5;
const CV_CEILING_PCT: f64 = 7.0;
const CV_FLOOR_PCT: f64 = 40.0;

/// 100·(1+e^{k(a−m)})/(1+e^{k(x−m)}): 100 at x = a, falling away from it.
fn scaled_sigmoid(x: f64, k: f64, m: f64, a: f64) -> f64 {
    let e = |v: f64| v.clamp(-EXP_CAP, EXP_CAP).exp();
    100.0 * (1.0 + e(k * (a - m))) / (1.0 + e(k * (x - m)))
}

pub fn duration_score(total_sleep_min: f64) -> i64 {
    let h = total_sleep_min / 60.0;
    if (7.0..=9.0).contains(&h) {
        100
    } else if h < 7.0 {
        (scaled_sigmoid(h, SHORT_K, SHORT_M, SHORT_A) as i64).clamp(0, 100)
    } else {
        (scaled_sigmoid(h, LONG_K, LONG_M, LONG_A) as i64).clamp(LONG_FLOOR, 100)
    }
}

/// One stage against its 90-minute target, linear below it.
pub fn stage_part(minutes: f64) -> i64 {
    if minutes <= 0.0 {
        0
    } else {
        ((minutes / STAGE_TARGET_MIN * 100.0) as i64).min(100)
    }
}

pub fn stages_score(deep_min: f64, rem_min: f64) -> i64 {
    (0.5 * stage_part(deep_min) as f64 + 0.5 * stage_part(rem_min) as f64) as i64
}

/// Hours past noon on a continuous axis across midnight: 23:00 → 11, 01:00 → 13.
pub fn hours_past_noon(hour: f64) -> f64 {
    (if hour < 12.0 { hour + 24.0 } else { hour }) - 12.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `tonight` and `history` are local bedtimes as hours of the day (0–24).
pub fn consistency_score(tonight: f64, history: &[f64]) -> i64 {
    if history.is_empty() {
        return 0;
    }
    let m = median(history.iter().map(|h| hours_past_noon(*h)).collect());
    let diff = (hours_past_noon(tonight) - m) * 60.0;
    if diff.abs() <= CONSISTENCY_TOLERANCE_MIN {
        return 100;
    }
    let over = (diff.abs() - CONSISTENCY_TOLERANCE_MIN) / CONSISTENCY_SPAN_MIN * 100.0;
    let penalty = if diff > 0.0 {
        over
    } else {
        over.min(EARLY_MAX_PENALTY)
    };
    ((100.0 - penalty) as i64).max(0)
}

/// Wake after sleep onset and the number of awakenings longer than 5 minutes, from a stage
/// timeline (stage, minutes) in time order.
pub fn waso(timeline: &[(SleepStage, f64)]) -> (f64, usize) {
    let asleep = |s: SleepStage| s != SleepStage::Awake && s != SleepStage::InBed;
    let (Some(first), Some(last)) = (
        timeline.iter().position(|(s, _)| asleep(*s)),
        timeline.iter().rposition(|(s, _)| asleep(*s)),
    ) else {
        return (0.0, 0);
    };
    let mut total = 0.0;
    let mut count = 0;
    let mut run = 0.0;
    for (s, m) in &timeline[first..=last] {
        if *s == SleepStage::Awake {
            total += m;
            run += m;
        } else {
            if run > AWAKENING_MIN {
                count += 1;
            }
            run = 0.0;
        }
    }
    (total, count)
}

pub fn interruptions_score(waso_min: f64, awakenings: usize) -> i64 {
    let duration = if waso_min > WASO_FREE_MIN {
        (WASO_POINTS - (waso_min - WASO_FREE_MIN) / WASO_SPAN_MIN * WASO_POINTS).max(0.0)
    } else {
        WASO_POINTS
    };
    let fraction = match awakenings {
        0 | 1 => 1.0,
        2 => 0.75,
        3 => 0.5,
        _ => 0.0,
    };
    ((duration + FREQUENCY_POINTS * fraction) as i64).clamp(0, 100)
}

#[derive(Debug, Clone, PartialEq)]
pub struct SleepInputs {
    pub total_sleep_min: f64,
    pub deep_min: f64,
    pub rem_min: f64,
    /// Stored awake minutes, used when the timeline has no stages.
    pub awake_min: f64,
    /// Local bedtime, hours of the day.
    pub bedtime_hour: f64,
    pub history_bedtimes: Vec<f64>,
    pub timeline: Vec<(SleepStage, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SleepScore {
    pub overall: i64,
    pub duration: i64,
    pub stages: i64,
    pub consistency: i64,
    pub interruptions: i64,
}

/// The weighted pillars, evaluated in upstream's floating-point order (each pillar as a fraction
/// of 100, weighted, summed, scaled back and truncated): the exact sum would give 58 where
/// upstream gives 57 for (100, 55, 0, 35), and the golden values are upstream's.
pub fn overall_score(duration: i64, stages: i64, consistency: i64, interruptions: i64) -> i64 {
    let fraction = (duration as f64 / 100.0) * W_DURATION
        + (stages as f64 / 100.0) * W_STAGES
        + (consistency as f64 / 100.0) * W_CONSISTENCY
        + (interruptions as f64 / 100.0) * W_INTERRUPTIONS;
    ((0.0 + 100.0 * fraction) as i64).clamp(0, 100)
}

/// None when the night has no sleep or more than a day of it (no score, as upstream).
pub fn sleep_score(i: &SleepInputs) -> Option<SleepScore> {
    if i.total_sleep_min <= 0.0 || i.total_sleep_min > 1440.0 {
        return None;
    }
    let d = duration_score(i.total_sleep_min);
    let s = stages_score(i.deep_min, i.rem_min);
    let c = consistency_score(i.bedtime_hour, &i.history_bedtimes);
    let has_stages = i
        .timeline
        .iter()
        .any(|(st, _)| !matches!(st, SleepStage::Sleeping | SleepStage::InBed));
    let (w, n) = if has_stages {
        waso(&i.timeline)
    } else {
        (i.awake_min, 0)
    };
    let r = interruptions_score(w, n);
    Some(SleepScore {
        overall: overall_score(d, s, c, r),
        duration: d,
        stages: s,
        consistency: c,
        interruptions: r,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resilience {
    /// Coefficient of variation of the daily means (a fraction).
    pub cv: f64,
    pub score: i64,
    pub days_counted: usize,
}

/// Values that can be HRV readings: finite and positive (0 ms is not physiological).
fn valid_hrv(values: &[f64]) -> Vec<f64> {
    values
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect()
}

/// Coefficient of variation (sample standard deviation / mean) of the valid values; None with
/// fewer than two of them.
pub fn hrv_cv(values: &[f64]) -> Option<f64> {
    let v = valid_hrv(values);
    if v.len() < 2 {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some(var.sqrt() / mean)
}

/// CV (a fraction) to 0–100: 100 up to the 7 % ceiling, 0 from the 40 % floor, linear between.
/// Rounded half to even, as Python's `round` (upstream) does.
pub fn resilience_score(cv: f64) -> i64 {
    let pct = cv * 100.0;
    if pct <= CV_CEILING_PCT {
        100
    } else if pct >= CV_FLOOR_PCT {
        0
    } else {
        ((100.0 * (CV_FLOOR_PCT - pct) / (CV_FLOOR_PCT - CV_CEILING_PCT)).round_ties_even() as i64)
            .clamp(0, 100)
    }
}

/// From the daily mean RMSSD of each day of the lookback window that has data.
pub fn resilience(daily_means: &[f64]) -> Option<Resilience> {
    let days = valid_hrv(daily_means).len();
    if days < MIN_DAYS {
        return None;
    }
    let cv = hrv_cv(daily_means)?;
    Some(Resilience {
        cv,
        score: resilience_score(cv),
        days_counted: days,
    })
}

#[cfg(test)]
#[path = "scores_upstream_golden.rs"]
mod upstream_golden;

#[cfg(test)]
mod tests {
    use super::*;
    use SleepStage::*;

    #[test]
    fn duration_pillar_golden_values() {
        assert_eq!(duration_score(420.0), 100);
        assert_eq!(duration_score(540.0), 100);
        // 6 h: 100·(1+e^-3)/(1+e^-1.5) = 85.83 → 85
        assert_eq!(duration_score(360.0), 85);
        // 5 h: 100·(1+e^-3)/2 = 52.49 → 52
        assert_eq!(duration_score(300.0), 52);
        // 4 h: 100·(1+e^-3)/(1+e^1.5) = 19.15 → 19
        assert_eq!(duration_score(240.0), 19);
        // 10 h: 100·(1+e^-1.6)/(1+e^-0.8) = 82.93 → 82
        assert_eq!(duration_score(600.0), 82);
        // 14 h would be 9.99: floored at 50.
        assert_eq!(duration_score(840.0), 50);
    }

    #[test]
    fn stages_pillar_golden_values() {
        assert_eq!(stages_score(90.0, 90.0), 100);
        assert_eq!(stages_score(45.0, 120.0), 75);
        assert_eq!(stages_score(0.0, 60.0), 33);
    }

    #[test]
    fn consistency_pillar_golden_values() {
        let h = [23.0, 23.0, 23.5];
        assert_eq!(consistency_score(23.25, &h), 100);
        // 60 min late: 100 − 45/105·100 = 57.14 → 57
        assert_eq!(consistency_score(0.0, &h), 57);
        // 60 min early: penalty capped at 20.
        assert_eq!(consistency_score(22.0, &h), 80);
        // 3 h late: 0.
        assert_eq!(consistency_score(2.0, &h), 0);
        assert_eq!(consistency_score(23.0, &[]), 0);
    }

    #[test]
    fn interruptions_pillar_golden_values() {
        let t = [
            (Awake, 10.0),
            (Light, 60.0),
            (Awake, 10.0),
            (Deep, 60.0),
            (Awake, 30.0),
            (Rem, 60.0),
            (Awake, 3.0),
            (Light, 30.0),
            (Awake, 15.0),
        ];
        // Leading and trailing awake do not count: WASO 43, two awakenings over 5 min.
        assert_eq!(waso(&t), (43.0, 2));
        // 80 − 23/70·80 = 53.71, + 15 = 68.71 → 68
        assert_eq!(interruptions_score(43.0, 2), 68);
        assert_eq!(interruptions_score(10.0, 1), 100);
        assert_eq!(interruptions_score(200.0, 5), 0);
    }

    #[test]
    fn overall_sleep_score_golden_value() {
        let i = SleepInputs {
            total_sleep_min: 360.0,
            deep_min: 45.0,
            rem_min: 120.0,
            awake_min: 0.0,
            bedtime_hour: 0.0,
            history_bedtimes: vec![23.0, 23.0, 23.5],
            timeline: vec![(Light, 195.0), (Awake, 43.0), (Deep, 45.0), (Rem, 120.0)],
        };
        let s = sleep_score(&i).unwrap();
        // WASO 43 with one awakening: 53.71 + 20 → 73.
        assert_eq!(
            (s.duration, s.stages, s.consistency, s.interruptions),
            (85, 75, 57, 73)
        );
        // 0.4·85 + 0.2·75 + 0.2·57 + 0.2·73 = 75.0
        assert_eq!(s.overall, 75);
        assert!(sleep_score(&SleepInputs {
            total_sleep_min: 0.0,
            ..i.clone()
        })
        .is_none());
        assert!(sleep_score(&SleepInputs {
            total_sleep_min: 1441.0,
            ..i
        })
        .is_none());
    }

    #[test]
    fn resilience_golden_values() {
        // Identical nights: CV 0 → 100.
        let r = resilience(&[50.0; 7]).unwrap();
        assert_eq!((r.score, r.days_counted), (100, 7));
        // 40, 50, 60, 50, 50: sd = 7.071, mean 50 → CV 14.14 % → round(100·25.86/33) = 78
        let r = resilience(&[40.0, 50.0, 60.0, 50.0, 50.0]).unwrap();
        assert!((r.cv - 0.141421).abs() < 1e-6);
        assert_eq!(r.score, 78);
        // 20, 80, 20, 80, 20: CV 69 % → 0
        assert_eq!(
            resilience(&[20.0, 80.0, 20.0, 80.0, 20.0]).unwrap().score,
            0
        );
        // Four days are not enough.
        assert!(resilience(&[50.0; 4]).is_none());
    }
}
