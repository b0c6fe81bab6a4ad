//! Each study's sampler, kept between reconciles so that TPE's kept work carries over from
//! one suggestion to the next. Only a cache: what a sampler keeps never changes a
//! suggestion, so a restart (or an eviction) loses speed, nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::view::lock;
use crate::engine::samplers::{Sampler, SamplerSpec};

/// A study's sampler, the spec it was built from and when it was last used.
struct Kept {
    spec: SamplerSpec,
    sampler: Arc<dyn Sampler>,
    used: u64,
}

/// See the module docs. Least recently used studies' samplers go first past [`Self::MAX`].
#[derive(Default)]
pub struct KeptSamplers(Mutex<(HashMap<String, Kept>, u64)>);

impl KeptSamplers {
    /// Studies whose samplers are kept at most. A TPE sampler keeps up to a few MB (its kept
    /// fits and normal masses), so 256 bound it.
    pub const MAX: usize = 256;

    /// The kept sampler of study `uid` if it was built from `spec`, else `built`, kept.
    pub fn get(&self, uid: &str, spec: &SamplerSpec, built: Box<dyn Sampler>) -> Arc<dyn Sampler> {
        let mut g = lock(&self.0);
        let (kept, clock) = &mut *g;
        *clock += 1;
        let now = *clock;
        if let Some(k) = kept.get_mut(uid)
            && &k.spec == spec
        {
            k.used = now;
            return k.sampler.clone();
        }
        if !kept.contains_key(uid) && kept.len() >= Self::MAX {
            // Evict the least recently used one only (not the whole cache).
            if let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, k)| k.used)
                .map(|(u, _)| u.clone())
            {
                kept.remove(&oldest);
            }
        }
        let sampler: Arc<dyn Sampler> = Arc::from(built);
        kept.insert(
            uid.to_string(),
            Kept {
                spec: spec.clone(),
                sampler: sampler.clone(),
                used: now,
            },
        );
        sampler
    }

    /// Drops a study's sampler (the study is gone).
    pub fn forget(&self, uid: &str) {
        lock(&self.0).0.remove(uid);
    }

    /// Whether study `uid` has a kept sampler.
    pub fn holds(&self, uid: &str) -> bool {
        lock(&self.0).0.contains_key(uid)
    }

    pub fn len(&self) -> usize {
        lock(&self.0).0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::samplers;

    fn spec(seed: u64) -> SamplerSpec {
        serde_json::from_value(serde_json::json!({"random": {"seed": seed}})).unwrap()
    }

    #[test]
    fn evicts_the_least_recently_used_study_only() {
        let k = KeptSamplers::default();
        let s = spec(1);
        for i in 0..KeptSamplers::MAX {
            k.get(&format!("u{i}"), &s, samplers::build(&s).unwrap());
        }
        // u0 is used again, so u1 is now the least recently used.
        let a = k.get("u0", &s, samplers::build(&s).unwrap());
        let again = k.get("u0", &s, samplers::build(&s).unwrap());
        assert!(Arc::ptr_eq(&a, &again), "the kept sampler is reused");
        k.get("new", &s, samplers::build(&s).unwrap());
        assert_eq!(k.len(), KeptSamplers::MAX);
        assert!(k.holds("u0") && k.holds("new") && k.holds("u2"));
        assert!(!k.holds("u1"));
        // A changed spec replaces the study's sampler.
        let b = k.get("u0", &spec(2), samplers::build(&spec(2)).unwrap());
        assert!(!Arc::ptr_eq(&a, &b));
        k.forget("u0");
        assert!(!k.holds("u0"));
    }
}
