//! Rendering a trial's command line and environment from the Study's trial template, as the
//! operator renders the Job: placeholders `${params.NAME}`, `${trial.name}`,
//! `${trial.number}`, `${study.name}` and the `LOPPER_*` environment.

use crate::engine::Params;

/// What a placeholder can refer to for one trial.
#[derive(Clone, Copy, Debug)]
pub struct TrialContext<'a> {
    pub study: &'a str,
    pub trial: &'a str,
    pub number: u64,
    pub params: &'a Params,
}

pub use crate::crd::{param_env_name, trial_name};

/// Substitutes the placeholders in `s`. A parameter that is not active in this trial
/// (a conditional one) renders as the empty string; an unknown placeholder is left as is.
pub fn render(s: &str, ctx: &TrialContext<'_>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &after[..end];
        match resolve(key, ctx) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn resolve(key: &str, ctx: &TrialContext<'_>) -> Option<String> {
    match key.trim() {
        "trial.name" => Some(ctx.trial.to_string()),
        "trial.number" => Some(ctx.number.to_string()),
        "study.name" => Some(ctx.study.to_string()),
        k => k.strip_prefix("params.").map(|name| {
            ctx.params
                .get(name)
                .map(|v| v.to_string())
                .unwrap_or_default()
        }),
    }
}

/// The environment a trial gets on top of the container's own, as in a Job.
pub fn lopper_env(ctx: &TrialContext<'_>) -> Vec<(String, String)> {
    crate::crd::trial_env(ctx.study, ctx.trial, ctx.number, ctx.params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ParamValue;

    #[test]
    fn renders_placeholders() {
        let mut params = Params::new();
        params.insert("lr".into(), ParamValue::Float(0.01));
        params.insert("hidden".into(), ParamValue::Int(64));
        let ctx = TrialContext {
            study: "s",
            trial: "s-3",
            number: 3,
            params: &params,
        };
        assert_eq!(
            render("--lr=${params.lr} ${params.hidden}/${trial.name}", &ctx),
            "--lr=0.01 64/s-3"
        );
        assert_eq!(render("${trial.number}${study.name}", &ctx), "3s");
        assert_eq!(render("${params.momentum}", &ctx), "");
        assert_eq!(render("${other} ${unclosed", &ctx), "${other} ${unclosed");
        let env = lopper_env(&ctx);
        assert!(env.contains(&("LOPPER_PARAM_HIDDEN".into(), "64".into())));
        assert!(env.contains(&("LOPPER_PARAMS".into(), r#"{"hidden":64,"lr":0.01}"#.into())));
        assert_eq!(param_env_name("batch-size.x"), "LOPPER_PARAM_BATCH_SIZE_X");
    }
}
