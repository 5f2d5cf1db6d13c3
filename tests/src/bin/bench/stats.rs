//! Percentiles, summaries and per-round ratios.

/// The `p`th percentile (nearest rank) of sorted values; NaN if empty.
pub fn pct_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    s
}

/// The median; NaN if empty.
pub fn median(v: &[f64]) -> f64 {
    pct_sorted(&sorted(v), 50.0)
}

/// Order statistics of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    pub fn of(v: &[f64]) -> Summary {
        let s = sorted(v);
        let mean = if s.is_empty() {
            f64::NAN
        } else {
            s.iter().sum::<f64>() / s.len() as f64
        };
        Summary {
            n: s.len(),
            p10: pct_sorted(&s, 10.0),
            p50: pct_sorted(&s, 50.0),
            p90: pct_sorted(&s, 90.0),
            p99: pct_sorted(&s, 99.0),
            max: s.last().copied().unwrap_or(f64::NAN),
            mean,
        }
    }
}

/// A figure computed once per round: its median and spread across rounds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
}

impl Spread {
    pub fn of(per_round: &[f64]) -> Spread {
        let s = Summary::of(per_round);
        Spread {
            p10: s.p10,
            p50: s.p50,
            p90: s.p90,
        }
    }

    /// "1.23 (1.10–1.40)".
    pub fn show(&self, digits: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.p50,
            self.p10,
            self.p90,
            d = digits
        )
    }
}

/// Element-wise `f(a[i], b[i])`, for per-round ratios and differences.
pub fn zip_with(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=101).map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!(s.p50, 51.0);
        assert_eq!(s.p10, 11.0);
        assert_eq!(s.p99, 100.0);
        assert_eq!(s.max, 101.0);
        assert!(median(&[]).is_nan());
    }
}
