//! Dispatch to AVX2 copies of hot loops. Each copy is the same code compiled with 256-bit
//! vectors; neither uses fused multiply-add and Rust never reassociates floating point, so
//! both give bit-identical results: a suggestion does not depend on the CPU.

use super::special::ln_one_minus_upper_tail;

/// `log_pdf_many(xs, out)` calling the type's `log_pdf_many_impl`, which is compiled a
/// second time with 256-bit vectors and used on x86-64 CPUs with AVX2.
macro_rules! log_pdf_many_with_avx2 {
    ($(#[$doc:meta])*) => {
        $(#[$doc])*
        pub(crate) fn log_pdf_many(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { self.log_pdf_many_avx2(xs, out, masses) };
                return;
            }
            self.log_pdf_many_impl(xs, out, masses);
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn log_pdf_many_avx2(&self, xs: &[f64], out: &mut Vec<f64>, masses: &mut Masses) {
            self.log_pdf_many_impl(xs, out, masses);
        }
    };
}
pub(super) use log_pdf_many_with_avx2;

/// [`ln_one_minus_upper_tail`] of each value, in place.
pub(super) fn ln_one_minus_upper_tails(zs: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { ln_one_minus_upper_tails_avx2(zs) };
        return;
    }
    for z in zs {
        *z = ln_one_minus_upper_tail(*z);
    }
}

/// The same loop with 256-bit vectors (no fused multiply-add: identical results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ln_one_minus_upper_tails_avx2(zs: &mut [f64]) {
    for z in zs {
        *z = ln_one_minus_upper_tail(*z);
    }
}
