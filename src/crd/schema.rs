//! Hand-written schema pieces and the admission rules the derive cannot express.
//!
//! Everything here yields *structural* schemas (no `$ref`, no `anyOf` at a typed node).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

/// Longest Study name: trial names append `-<number>` and Job names become pod label values (≤ 63).
pub const MAX_STUDY_NAME: usize = 52;

/// `params`: a map of name → bool | integer | number | string.
pub fn params_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
    })
}

/// Conditions as a map-list keyed by `type`, so several field managers can each own theirs.
pub fn conditions_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": {"type": "string"},
                "status": {"type": "string"},
                "reason": {"type": "string"},
                "message": {"type": "string"},
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer", "format": "int64"},
            },
        },
    })
}

/// `status.value`: a number, or `Infinity` / `-Infinity`.
pub fn value_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Final objective (completed) or last value (pruned): a number, or \"Infinity\" / \"-Infinity\"."
    })
}

/// `status.rungs`: rung number → value (a number, or `Infinity` / `-Infinity`).
pub fn rungs_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
    })
}

/// `status.intermediate`: the newest points in the chunks' compact form (see
/// [`crate::crd::curve::wire`]).
pub fn points_schema(_: &mut SchemaGenerator) -> Schema {
    // Untyped so that Trials written by earlier versions (a list of {step, value}) stay valid
    // for server-side apply while the next write replaces the list with the string.
    json_schema!({"x-kubernetes-preserve-unknown-fields": true})
}

/// `trialTemplate.spec`: a batch/v1 JobSpec, kept open (placeholders may sit in any string)
/// but with the parts admission can check declared.
pub fn job_spec_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "A batch/v1 JobSpec. Placeholders ${params.NAME}, ${trial.name}, ${trial.number}, ${study.name} are substituted in string values.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["template"],
        "properties": {"template": pod_template_schema()},
    })
}

/// A Job's pod template (`trialTemplate.spec.template`, and `template.spec.template` of a
/// JobSet's replicated job): a Job's pods never restart in place (`Always` is refused).
fn pod_template_schema() -> Value {
    json!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["containers"],
                "properties": {
                    "restartPolicy": {"type": "string", "enum": ["Never", "OnFailure"]},
                    "containers": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 64,
                        "items": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "required": ["name", "image"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 63},
                                "image": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                },
            },
        },
    })
}

pub fn jobset_spec_schema(_: &mut SchemaGenerator) -> Schema {
    let pod = pod_template_schema();
    let v = json!({
        "description": "A JobSet (jobset.x-k8s.io/v1alpha2) spec. Placeholders are substituted in string values; every pod gets the trial's labels and LOPPER_* env.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["replicatedJobs"],
        "properties": {
            "replicatedJobs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 32,
                "items": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "required": ["name", "template"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 63},
                        "replicas": {"type": "integer", "minimum": 1},
                        "template": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "required": ["spec"],
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": true,
                                    "required": ["template"],
                                    "properties": {
                                        "parallelism": {"type": "integer", "minimum": 1},
                                        "template": pod,
                                    },
                                },
                            },
                        },
                    },
                },
                "x-kubernetes-validations": [rule(
                    "self.all(r, self.exists_one(q, q.name == r.name))",
                    "spec.trialTemplate.jobSet.replicatedJobs names must be unique",
                )],
            },
        },
    });
    serde_json::from_value(v).expect("a valid schema")
}

pub fn trainjob_spec_schema(_: &mut SchemaGenerator) -> Schema {
    let v = json!({
        "description": "A Kubeflow TrainJob (trainer.kubeflow.org/v1alpha1) spec. Placeholders are substituted in string values; the trainer gets the trial's labels and LOPPER_* env.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "required": ["runtimeRef"],
        "properties": {
            "runtimeRef": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
            },
            "trainer": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"numNodes": {"type": "integer", "minimum": 1}},
            },
        },
    });
    serde_json::from_value(v).expect("a valid schema")
}

fn rule(rule: &str, message: &str) -> Value {
    json!({"rule": rule, "message": message})
}

fn add_rules(node: &mut Value, rules: Vec<Value>) {
    if let Some(obj) = node.as_object_mut() {
        let list = obj
            .entry("x-kubernetes-validations")
            .or_insert_with(|| json!([]));
        if let Some(arr) = list.as_array_mut() {
            arr.extend(rules);
        }
    }
}

fn props_mut<'a>(node: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    node.get_mut("properties")?.get_mut(name)
}

fn property_names(node: &Value) -> Vec<String> {
    node.get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// "exactly one key" for a union-like object (sampler, pruner, metrics).
fn exactly_one(node: &mut Value, what: &str) {
    let keys = property_names(node);
    if keys.is_empty() {
        return;
    }
    if let Some(obj) = node.as_object_mut() {
        obj.entry("minProperties").or_insert(json!(1));
        obj.entry("maxProperties").or_insert(json!(1));
    }
    let has: Vec<String> = keys.iter().map(|k| format!("has(self.{k})")).collect();
    add_rules(
        node,
        vec![rule(
            &format!("[{}].filter(x, x).size() == 1", has.join(", ")),
            &format!("{what} must have exactly one of: {}", keys.join(", ")),
        )],
    );
}

/// Range rules for a numeric distribution (`float` / `int` of a parameter).
fn range_rules(node: &mut Value, zero: &str) {
    let keys = property_names(node);
    let has = |k: &str| keys.iter().any(|x| x == k);
    let mut rules = Vec::new();
    if has("low") && has("high") {
        rules.push(rule(
            "!has(self.low) || !has(self.high) || self.low < self.high",
            "low must be less than high",
        ));
        if has("log") {
            rules.push(rule(
                &format!("!has(self.log) || !self.log || !has(self.low) || self.low > {zero}"),
                "log requires low > 0",
            ));
        }
    }
    if has("step") && has("log") {
        rules.push(rule(
            "!has(self.step) || !has(self.log) || !self.log",
            "step cannot be combined with log",
        ));
    }
    if has("step") {
        rules.push(rule(
            &format!("!has(self.step) || self.step > {zero}"),
            "step must be positive",
        ));
    }
    add_rules(node, rules);
}

/// Admission rules for a path shared with the metrics sidecar (`spec.metrics.<source>.<field>`),
/// the same as `metrics::spec::check_shared_path`: absolute, no `..`, in a folder other than `/`.
fn shared_path_rules(metrics: &mut Value, source: &str, field: &str, is_dir: bool) {
    let Some(node) = props_mut(metrics, source) else {
        return;
    };
    let name = format!("spec.metrics.{source}.{field}");
    let mut rules = vec![
        rule(
            &format!("self.{field}.startsWith('/')"),
            &format!("{name} must be an absolute path"),
        ),
        rule(
            &format!("!self.{field}.matches('(^|/)[.][.](/|$)')"),
            &format!("{name} must not contain `..`"),
        ),
    ];
    if is_dir {
        rules.push(rule(
            &format!("self.{field}.matches('^/+[^/]')"),
            &format!("{name} must be a folder other than / (it is shared with the sidecar)"),
        ));
    } else {
        rules.push(rule(
            &format!("self.{field}.matches('^/+[^/].*/[^/]+$')"),
            &format!(
                "{name} must name a file in a folder other than / (e.g. /metrics/metrics.csv; the folder is shared with the sidecar)"
            ),
        ));
    }
    add_rules(node, rules);
}

/// Adds list bounds and CEL rules to the Study's `openAPIV3Schema`.
pub fn study_rules(root: &mut Value) {
    add_rules(
        root,
        vec![rule(
            &format!("size(self.metadata.name) <= {MAX_STUDY_NAME}"),
            &format!(
                "metadata.name must be at most {MAX_STUDY_NAME} characters (trial and Job names append -<number>)"
            ),
        )],
    );
    let Some(spec) = props_mut(root, "spec") else {
        return;
    };
    add_rules(
        spec,
        vec![
            rule(
                "has(self.maxTrials) || has(self.budget)",
                "spec.maxTrials is required unless spec.budget is set",
            ),
            rule(
                "!has(self.maxFailedTrials) || !has(self.maxTrials) || self.maxFailedTrials < self.maxTrials",
                "maxFailedTrials must be less than maxTrials",
            ),
            rule(
                "!has(self.maxTrials) || self.maxTrials <= 100000",
                "maxTrials must be at most 100000",
            ),
            rule(
                "!has(self.pruner) || !has(self.pruner.asha) || has(self.pruner.asha.budgetSteps) || (has(self.budget) && has(self.budget.steps))",
                "spec.pruner.asha.budgetSteps is required: set spec.budget.steps (or budgetSteps here)",
            ),
            rule(
                "!has(self.priorityClassName) || !has(self.trialTemplate.trainJob)",
                crate::workload::spec::PRIORITY_TRAINJOB,
            ),
        ],
    );
    for (field, what) in [
        ("sampler", "spec.sampler"),
        ("pruner", "spec.pruner"),
        ("metrics", "spec.metrics"),
    ] {
        if let Some(n) = props_mut(spec, field) {
            exactly_one(n, what);
        }
    }
    if let Some(tt) = props_mut(spec, "trialTemplate") {
        add_rules(
            tt,
            vec![
                rule(
                    "[has(self.spec), has(self.jobSet), has(self.trainJob)].filter(x, x).size() == 1",
                    "spec.trialTemplate must have exactly one of: spec (a batch/v1 JobSpec), jobSet, trainJob",
                ),
                rule(
                    "!has(self.primaryReplicatedJob) || (has(self.jobSet) && self.jobSet.replicatedJobs.exists(r, r.name == self.primaryReplicatedJob))",
                    "spec.trialTemplate.primaryReplicatedJob must name one of jobSet.replicatedJobs",
                ),
            ],
        );
    }
    if let Some(b) = props_mut(spec, "budget") {
        add_rules(
            b,
            vec![
                rule(
                    "has(self.steps) || has(self.gpuHours)",
                    "spec.budget needs at least one of steps, gpuHours",
                ),
                rule(
                    "!has(self.gpuHours) || self.gpuHours > 0.0",
                    "spec.budget.gpuHours must be above 0",
                ),
            ],
        );
    }
    if let Some(m) = props_mut(spec, "metrics") {
        shared_path_rules(m, "file", "path", false);
        shared_path_rules(m, "tensorboard", "dir", true);
        if let Some(p) = props_mut(m, "prometheus") {
            add_rules(
                p,
                vec![rule(
                    "isURL(self.url) && url(self.url).getScheme() in ['http', 'https'] && url(self.url).getHostname() != ''",
                    "spec.metrics.prometheus.url must be an http:// or https:// URL with a host, e.g. http://prometheus.monitoring:9090",
                )],
            );
        }
    }
    if let Some(p) = props_mut(spec, "pruner")
        && let Some(th) = props_mut(p, "threshold")
    {
        let keys = property_names(th);
        if keys.iter().any(|k| k == "lower") && keys.iter().any(|k| k == "upper") {
            add_rules(
                th,
                vec![
                    rule(
                        "has(self.lower) || has(self.upper)",
                        "threshold needs at least one of lower, upper",
                    ),
                    rule(
                        "!has(self.lower) || !has(self.upper) || self.lower <= self.upper",
                        "lower must not exceed upper",
                    ),
                ],
            );
        }
    }
    if let Some(params) = props_mut(spec, "parameters") {
        if let Some(obj) = params.as_object_mut() {
            obj.insert("minItems".into(), json!(1));
            obj.insert("maxItems".into(), json!(128));
        }
        add_rules(
            params,
            vec![rule(
                "self.all(p, self.exists_one(q, q.name == p.name))",
                "parameter names must be unique",
            )],
        );
        if let Some(items) = params.get_mut("items") {
            if let Some(name) = props_mut(items, "name")
                && let Some(obj) = name.as_object_mut()
            {
                obj.insert("minLength".into(), json!(1));
                obj.insert("maxLength".into(), json!(63));
                obj.insert("pattern".into(), json!("^[A-Za-z_][A-Za-z0-9_.-]*$"));
            }
            let dists: Vec<String> = property_names(items)
                .into_iter()
                .filter(|k| k != "name" && k != "when")
                .collect();
            if !dists.is_empty() {
                let has: Vec<String> = dists.iter().map(|k| format!("has(self.{k})")).collect();
                add_rules(
                    items,
                    vec![rule(
                        &format!("[{}].filter(x, x).size() == 1", has.join(", ")),
                        &format!("a parameter must have exactly one of: {}", dists.join(", ")),
                    )],
                );
            }
            if let Some(f) = props_mut(items, "float") {
                range_rules(f, "0.0");
            }
            if let Some(i) = props_mut(items, "int") {
                range_rules(i, "0");
            }
            if let Some(c) = props_mut(items, "categorical")
                && let Some(choices) = props_mut(c, "choices")
                && let Some(obj) = choices.as_object_mut()
            {
                obj.entry("minItems").or_insert(json!(1));
            }
        }
    }
    if let Some(tt) = props_mut(spec, "trialTemplate") {
        add_rules(
            tt,
            vec![rule(
                "!has(self.primaryContainer) || self.spec.template.spec.containers.exists(c, c.name == self.primaryContainer)",
                "primaryContainer must name a container of spec.template.spec.containers",
            )],
        );
        if let Some(g) = props_mut(tt, "gpuResource")
            && let Some(obj) = g.as_object_mut()
        {
            obj.insert(
                "pattern".into(),
                json!("^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"),
            );
        }
    }
    if let Some(ws) = props_mut(spec, "warmStart")
        && let Some(fs) = props_mut(ws, "fromStudies")
        && let Some(obj) = fs.as_object_mut()
    {
        obj.insert("minItems".into(), json!(1));
        obj.insert("maxItems".into(), json!(32));
        obj.insert(
            "items".into(),
            json!({"type": "string", "minLength": 1, "maxLength": 253}),
        );
    }
}

/// Applies `f` to the `openAPIV3Schema` of every version of `crd`.
pub fn patch_schema(crd: &mut CustomResourceDefinition, f: impl Fn(&mut Value)) {
    for v in &mut crd.spec.versions {
        if let Some(s) = v
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            let mut value = serde_json::to_value(&*s).expect("schema to json");
            f(&mut value);
            *s = serde_json::from_value(value).expect("json to schema");
        }
    }
}
