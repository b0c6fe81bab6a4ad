//! `qmc`: low-discrepancy points, as Optuna's `QMCSampler` over SciPy's `qmc` engines.
//!
//! Trial `number` takes point `number` of a `d`-dimensional sequence, `d` = the number of
//! declared parameters (one coordinate per parameter, conditional ones included; an inactive
//! parameter's coordinate is unused). Coordinates map onto each distribution as
//! [`Distribution::from_unit`] (log-uniform, equal mass per step, categorical by index), so
//! unlike Optuna categorical parameters are covered by the sequence too.
//!
//! * `sobol`: Joe–Kuo direction numbers (up to [`sobol_table::DIMS`] dimensions), 32-bit,
//!   scrambled (default) by a random linear matrix scramble plus digital shift (Owen's LMS,
//!   as SciPy's `Sobol(scramble=True)`).
//! * `halton`: radical inverses in the first `d` primes, scrambled by a random permutation of
//!   the digits per base and digit position (as SciPy's `Halton(scramble=True)`).
//!
//! The scramble is a function of the seed only; nothing is kept between calls.
//!
//! [`Distribution::from_unit`]: crate::engine::space::Distribution::from_unit

use rand::{Rng, RngCore};

use super::sobol_table::{self, POLY, VINIT};
use super::{History, QmcKind, QmcSpec, Sampler, SamplerError, Suggestion, trial_rng};
use crate::engine::space::SearchSpace;
use crate::engine::{Direction, ParamValue};

/// Largest number of Halton dimensions (primes up to 8161).
pub const HALTON_DIMS: usize = 1024;
const BITS: usize = 32;

/// Quasi-Monte Carlo sampler: trial `number` takes point `number` of the sequence.
#[derive(Clone, Debug)]
pub struct QmcSampler {
    spec: QmcSpec,
}

impl QmcSampler {
    pub fn new(spec: QmcSpec) -> Self {
        QmcSampler { spec }
    }

    /// Point `index` of the configured `dims`-dimensional sequence, in [0, 1)^dims.
    pub fn point(&self, dims: usize, index: u64) -> Result<Vec<f64>, SamplerError> {
        let seed = self.spec.seed.unwrap_or(0);
        match self.spec.kind {
            QmcKind::Sobol => sobol_point(dims, index, self.spec.scramble, seed),
            QmcKind::Halton => halton_point(dims, index, self.spec.scramble, seed),
        }
    }
}

/// Direction numbers `V[k]` (k = 0..32, bit 31 is the first binary digit) of dimension `j`.
fn directions(j: usize) -> [u32; BITS] {
    let mut m = [0u64; BITS];
    if j == 0 {
        m = [1; BITS];
    } else {
        let poly = POLY[j];
        let s = (31 - poly.leading_zeros()) as usize; // degree
        let a = (poly >> 1) & ((1u32 << (s - 1)) - 1);
        for k in 0..s.min(BITS) {
            m[k] = VINIT[j][k] as u64;
        }
        for i in s..BITS {
            let mut v = m[i - s] ^ (m[i - s] << s);
            for k in 1..s {
                if (a >> (s - 1 - k)) & 1 == 1 {
                    v ^= m[i - k] << k;
                }
            }
            m[i] = v;
        }
    }
    let mut out = [0u32; BITS];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (m[i] << (BITS - 1 - i)) as u32;
    }
    out
}

fn sobol_point(
    dims: usize,
    index: u64,
    scramble: bool,
    seed: u64,
) -> Result<Vec<f64>, SamplerError> {
    if dims > sobol_table::DIMS {
        return Err(SamplerError::TooManyDimensions(
            dims,
            sobol_table::DIMS,
            "sobol",
        ));
    }
    // 2^32 points per sequence; beyond that the sequence wraps around.
    let n = index & 0xffff_ffff;
    let mut rng = trial_rng(seed, u64::MAX, 0x736f_626f);
    let mut out = Vec::with_capacity(dims);
    for j in 0..dims {
        let mut v = directions(j);
        let mut shift = 0u32;
        if scramble {
            // Lower-triangular binary matrix with unit diagonal: row r (digit r, bit 31-r)
            // mixes in random earlier (more significant) digits.
            let mut rows = [0u32; BITS];
            for (r, row) in rows.iter_mut().enumerate() {
                let bit = 1u32 << (BITS - 1 - r);
                let above = !((bit << 1).wrapping_sub(1)) & if r == 0 { 0 } else { u32::MAX };
                *row = bit | (rng.next_u32() & above);
            }
            for d in v.iter_mut() {
                let mut x = 0u32;
                for (r, row) in rows.iter().enumerate() {
                    if (*d & row).count_ones() & 1 == 1 {
                        x |= 1 << (BITS - 1 - r);
                    }
                }
                *d = x;
            }
            shift = rng.next_u32();
        }
        let mut x = shift;
        for (k, d) in v.iter().enumerate() {
            if (n >> k) & 1 == 1 {
                x ^= d;
            }
        }
        out.push(x as f64 / 4_294_967_296.0);
    }
    Ok(out)
}

fn primes(n: usize) -> Vec<u64> {
    let mut ps: Vec<u64> = Vec::with_capacity(n);
    let mut c = 2u64;
    while ps.len() < n {
        if ps
            .iter()
            .take_while(|&&p| p * p <= c)
            .all(|&p| !c.is_multiple_of(p))
        {
            ps.push(c);
        }
        c += 1;
    }
    ps
}

fn halton_point(
    dims: usize,
    index: u64,
    scramble: bool,
    seed: u64,
) -> Result<Vec<f64>, SamplerError> {
    if dims > HALTON_DIMS {
        return Err(SamplerError::TooManyDimensions(dims, HALTON_DIMS, "halton"));
    }
    let mut out = Vec::with_capacity(dims);
    for (j, b) in primes(dims).into_iter().enumerate() {
        // Enough digits for double precision (and for any u64 index).
        let digits = (64.0 / (b as f64).log2()).ceil() as usize;
        let perms: Option<Vec<Vec<u64>>> = scramble.then(|| {
            let mut rng = trial_rng(seed, u64::MAX - 1, j as u64);
            (0..digits)
                .map(|_| {
                    let mut p: Vec<u64> = (0..b).collect();
                    for i in (1..p.len()).rev() {
                        let k = rng.random_range(0..=i);
                        p.swap(i, k);
                    }
                    p
                })
                .collect()
        });
        let mut x = 0.0;
        let mut scale = 1.0 / b as f64;
        let mut n = index;
        for k in 0..digits {
            let d = n % b;
            n /= b;
            let d = perms.as_ref().map_or(d, |p| p[k][d as usize]);
            x += d as f64 * scale;
            scale /= b as f64;
            if perms.is_none() && n == 0 {
                break;
            }
        }
        out.push(x.min(1.0 - f64::EPSILON));
    }
    Ok(out)
}

impl Sampler for QmcSampler {
    fn suggest(
        &self,
        space: &SearchSpace,
        _direction: Direction,
        _history: History<'_>,
        number: u64,
    ) -> Result<Suggestion, SamplerError> {
        let u = self.point(space.len(), number)?;
        let params = space.assemble(|i, p, _| -> Result<ParamValue, SamplerError> {
            Ok(p.dist.from_unit(u.get(i).copied().unwrap_or(0.5)))
        })?;
        Ok(Suggestion::Params(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(kind: QmcKind, scramble: bool) -> QmcSampler {
        QmcSampler::new(QmcSpec {
            seed: Some(7),
            kind,
            scramble,
        })
    }

    #[test]
    fn unscrambled_sobol_matches_the_classic_sequence() {
        let s = sampler(QmcKind::Sobol, false);
        let pts: Vec<Vec<f64>> = (0..4).map(|i| s.point(3, i).unwrap()).collect();
        // natural (non-Gray) order: 0, 1/2, then the 2nd-level points
        assert_eq!(pts[0], vec![0.0, 0.0, 0.0]);
        assert_eq!(pts[1], vec![0.5, 0.5, 0.5]);
        assert_eq!(pts[2][0], 0.25);
        assert_eq!(pts[2][1], 0.75);
    }

    #[test]
    fn sobol_points_are_stratified() {
        for scramble in [false, true] {
            let s = sampler(QmcKind::Sobol, scramble);
            for dims in [2usize, 6, 40] {
                let pts: Vec<Vec<f64>> = (0..64).map(|i| s.point(dims, i).unwrap()).collect();
                // every dimension of the first 64 points hits each of 64 bins once
                for d in 0..dims {
                    let mut bins = [0u32; 64];
                    for p in &pts {
                        let x = p[d];
                        assert!((0.0..1.0).contains(&x));
                        bins[(x * 64.0) as usize] += 1;
                    }
                    assert!(bins.iter().all(|&b| b == 1), "dim {d} scramble {scramble}");
                }
                // every pair of the first two dims: 16 points fill a 4x4 grid
                let mut grid = [0u32; 16];
                for p in &pts[..16] {
                    grid[(p[0] * 4.0) as usize * 4 + (p[1] * 4.0) as usize] += 1;
                }
                assert!(grid.iter().all(|&g| g == 1));
            }
        }
    }

    #[test]
    fn halton_points_are_stratified() {
        for scramble in [false, true] {
            let s = sampler(QmcKind::Halton, scramble);
            let mut bins2 = [0u32; 8];
            let mut bins3 = [0u32; 9];
            for i in 0..72 {
                let p = s.point(2, i).unwrap();
                assert!(p.iter().all(|x| (0.0..1.0).contains(x)));
                bins2[(p[0] * 8.0 + 1e-9) as usize] += 1;
                bins3[(p[1] * 9.0 + 1e-9) as usize] += 1;
            }
            assert!(bins2.iter().all(|&b| b == 9), "{bins2:?}");
            assert!(bins3.iter().all(|&b| b == 8), "{bins3:?}");
        }
        let u = sampler(QmcKind::Halton, false);
        assert_eq!(u.point(2, 1).unwrap(), vec![0.5, 1.0 / 3.0]);
    }

    #[test]
    fn too_many_dimensions_is_an_error() {
        let s = sampler(QmcKind::Sobol, true);
        assert!(s.point(sobol_table::DIMS + 1, 0).is_err());
        assert!(s.point(sobol_table::DIMS, 5).is_ok());
    }
}
