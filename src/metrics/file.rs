//! The parser of `spec.metrics.file`: lines of a metrics file (CSV with a header, JSON lines or
//! `key=value` lines) into `(step, value)` observations of the objective.
//!
//! Pure, like [`LineParser`] (whose JSON and `key=value` matching it reuses) and with the same
//! step rules: a record without the step counts as the next step, a repeated or lower step is
//! ignored. [`FileParser::new_file`] is called when the followed file is replaced or truncated:
//! a CSV file's header comes again, while the steps already seen stay seen.

use super::parser::{LineParser, RawObservation, SpecError, parse_step, parse_value};
use super::spec::{FileFormat, FileSpec, LogFormat, LogsSpec};

/// Stateful parser of one trial's metrics file.
#[derive(Debug, Clone)]
pub struct FileParser {
    kind: Kind,
    metric: String,
    step_key: String,
    last_step: Option<i64>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Column positions of the step and the objective, once the header is read.
    Csv {
        header: Option<(Option<usize>, Option<usize>)>,
    },
    Lines(LineParser),
}

impl FileParser {
    /// A parser for `objective_metric` in the format of `spec`.
    pub fn new(spec: &FileSpec, objective_metric: &str) -> Result<Self, SpecError> {
        let lines = |format| {
            LineParser::new(
                &LogsSpec {
                    format,
                    step_key: spec.step_key.clone(),
                    pattern: None,
                },
                objective_metric,
            )
        };
        let kind = match spec.format {
            FileFormat::Csv => {
                if spec.step_key.trim().is_empty() {
                    return Err(SpecError::EmptyStepKey);
                }
                Kind::Csv { header: None }
            }
            FileFormat::Jsonl => Kind::Lines(lines(LogFormat::Json)?),
            FileFormat::KeyValue => Kind::Lines(lines(LogFormat::KeyValue)?),
        };
        Ok(FileParser {
            kind,
            metric: objective_metric.to_string(),
            step_key: spec.step_key.clone(),
            last_step: None,
        })
    }

    /// The followed file was replaced or truncated: its first line is a header again.
    pub fn new_file(&mut self) {
        if let Kind::Csv { header } = &mut self.kind {
            *header = None;
        }
    }

    /// Feeds one line (without its terminator); returns the observation to record, if any.
    pub fn feed(&mut self, line: &str) -> Option<(i64, f64)> {
        let raw = self.parse(line)?;
        let step = match raw.step {
            Some(s) => s,
            None => self.last_step.map_or(0, |s| s.saturating_add(1)),
        };
        if self.last_step.is_some_and(|last| step <= last) {
            tracing::debug!(step, "file metrics: repeated or lower step ignored");
            return None;
        }
        self.last_step = Some(step);
        Some((step, raw.value))
    }

    fn parse(&mut self, line: &str) -> Option<RawObservation> {
        match &mut self.kind {
            Kind::Lines(p) => p.parse(line),
            Kind::Csv { header } => {
                if line.trim().is_empty() {
                    return None;
                }
                let cells = split_csv(line);
                let Some((step_col, value_col)) = *header else {
                    let find = |name: &str| cells.iter().position(|c| c.trim() == name);
                    let cols = (find(&self.step_key), find(&self.metric));
                    if cols.1.is_none() {
                        tracing::warn!(metric = %self.metric, header = %line, "metrics file: the CSV header has no column for the objective");
                    }
                    *header = Some(cols);
                    return None;
                };
                // An empty cell is a row that does not carry the objective (Lightning writes
                // training and validation rows separately).
                let value = cells.get(value_col?).filter(|c| !c.trim().is_empty())?;
                let value = parse_value(value)?;
                let step = match step_col.and_then(|i| cells.get(i)) {
                    Some(s) if !s.trim().is_empty() => Some(parse_step(s)?),
                    _ => None,
                };
                Some(RawObservation { step, value })
            }
        }
    }
}

/// Splits one CSV line into cells: `,` separated, `"` quotes a cell (`""` is a quote inside).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => cells.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    cells.push(cur);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(format: FileFormat, step_key: &str) -> FileParser {
        FileParser::new(
            &FileSpec {
                path: "/m/metrics".into(),
                format,
                step_key: step_key.into(),
            },
            "val_loss",
        )
        .unwrap()
    }

    fn feed_all(p: &mut FileParser, text: &str) -> Vec<(i64, f64)> {
        text.lines().filter_map(|l| p.feed(l)).collect()
    }

    #[test]
    fn csv_with_header_empty_cells_and_quotes() {
        let mut p = parser(FileFormat::Csv, "epoch");
        let text = "epoch,step,train_loss,val_loss\n0,10,0.9,\n0,10,,0.8\n1,20,0.7,\n1,20,,0.6\n\"2\",30,,\"0.5\"\n";
        assert_eq!(feed_all(&mut p, text), vec![(0, 0.8), (1, 0.6), (2, 0.5)]);
        // A replaced file: the header comes again, old steps stay seen.
        p.new_file();
        let text = "val_loss,epoch\n0.4,2\n0.3,3\nnan,4\n";
        let got = feed_all(&mut p, text);
        assert_eq!(got[0], (3, 0.3));
        assert!(got[1].1.is_nan() && got[1].0 == 4);
        assert_eq!(split_csv(r#"a,"b,""c""",d"#), vec!["a", "b,\"c\"", "d"]);
    }

    #[test]
    fn csv_without_step_column_counts_rows() {
        let mut p = parser(FileFormat::Csv, "step");
        assert_eq!(
            feed_all(&mut p, "val_loss\n0.5\n0.4\nbad\n0.3\n"),
            vec![(0, 0.5), (1, 0.4), (2, 0.3)]
        );
        // No objective column: nothing, and no panic.
        let mut p = parser(FileFormat::Csv, "step");
        assert!(feed_all(&mut p, "loss,step\n0.5,1\n").is_empty());
    }

    #[test]
    fn jsonl_and_key_value() {
        let mut p = parser(FileFormat::Jsonl, "epoch");
        let text = "{\"epoch\": 0, \"val_loss\": 0.9}\nnot json\n{\"epoch\": 1, \"val_loss\": NaN}\n{\"epoch\": 1, \"val_loss\": 0.1}\n{\"val_loss\": 0.2}\n";
        let got = feed_all(&mut p, text);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0], got[2]), ((0, 0.9), (2, 0.2)));
        let mut p = parser(FileFormat::KeyValue, "epoch");
        assert_eq!(
            feed_all(&mut p, "epoch=3 val_loss=0.41 acc=0.8\nepoch=4 acc=0.9\n"),
            vec![(3, 0.41)]
        );
        assert!(
            FileParser::new(
                &FileSpec {
                    path: "/m/x".into(),
                    format: FileFormat::Csv,
                    step_key: " ".into()
                },
                "v"
            )
            .is_err()
        );
    }
}
