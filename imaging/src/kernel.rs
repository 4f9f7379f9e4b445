//! The Gaussian weights, computed the same way on every machine.
//!
//! Tiles of one image are blurred by different workers, maybe on different hosts, and the pieces
//! must agree to the last bit. `f64::exp` comes from the platform's maths library, whose last digit
//! may differ between versions, so the weights use only `+ - * /`, which IEEE 754 pins down.

/// Normalized weights of a Gaussian of `sigma` over `-radius..=radius`, summing to 1 (in f64).
pub(crate) fn gaussian_weights(sigma: f32, radius: u32) -> Vec<f32> {
    let sigma = f64::from(sigma);
    let r = i64::from(radius);
    let raw: Vec<f64> = (-r..=r)
        .map(|d| {
            let d = d as f64;
            exp_neg(d * d / (2.0 * sigma * sigma))
        })
        .collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|w| (w / sum) as f32).collect()
}

/// e^(-x) for x >= 0 with only basic arithmetic: halve x until small, sum the Taylor series,
/// then square back. Relative error stays far below f32's precision for the x a kernel uses.
fn exp_neg(x: f64) -> f64 {
    let mut y = x;
    let mut halvings = 0;
    while y > 1.0 / 16.0 {
        y *= 0.5;
        halvings += 1;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for i in 1..=14 {
        term *= -y / f64::from(i);
        sum += term;
    }
    for _ in 0..halvings {
        sum *= sum;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_platform_to_f32_precision() {
        for i in 0..2000 {
            let x = f64::from(i) * 0.01;
            let ours = exp_neg(x);
            let libm = (-x).exp();
            assert!(
                ((ours - libm) / libm).abs() < 1e-12,
                "x={x}: {ours} vs {libm}"
            );
        }
    }

    #[test]
    fn weights_are_symmetric_normalized_and_peak_in_the_middle() {
        let w = gaussian_weights(2.0, 6);
        assert_eq!(w.len(), 13);
        for k in 0..6 {
            assert_eq!(w[k].to_bits(), w[12 - k].to_bits());
            assert!(w[k] < w[k + 1]);
        }
        let sum: f32 = w.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        // Exact value of the centre: 1 / sum_{d=-6}^{6} e^(-d^2/8).
        let expected: f64 = 1.0
            / (-6..=6)
                .map(|d: i32| (-(f64::from(d * d)) / 8.0).exp())
                .sum::<f64>();
        assert!((f64::from(w[6]) - expected).abs() < 1e-7);
    }
}
