//! The fast path of [`ReplayInput::parse`] for its usual input: JSON of the documented
//! shape whose curves hold plain numbers and nulls, read in one pass over the bytes (the
//! general, serde-driven parser spends several times as long per number).
//!
//! It accepts only text that the general parser accepts, and then builds exactly what that
//! parser builds; anything else (unknown or repeated keys, escapes in keys, strings or
//! nesting in a curve, a step count that does not match, malformed JSON) returns `None`,
//! and the general parser decides and names any error. Numbers are converted as
//! serde_json converts them (its default, not correctly rounded conversion: a correctly
//! rounded parser would read some 17-digit values one ulp apart and change outputs).

use serde::Deserialize;
use serde_json::Value;

use super::{Curve, ReplayInput};
use crate::engine::Direction;
use crate::engine::pruners::PrunerSpec;

/// `text` as the general parser would read it, if it is of the usual shape.
pub(super) fn parse(text: &str) -> Option<ReplayInput> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        at: 0,
    };
    let input = p.root()?;
    p.ws();
    (p.at == p.b.len()).then_some(input)
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.at += 1)
    }

    fn eat_null(&mut self) -> bool {
        self.ws();
        let null = self.b[self.at..].starts_with(b"null");
        if null {
            self.at += 4;
        }
        null
    }

    /// `{ "key": <member>, ... }`, `member` reading each value; keys without escapes.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        let text = self.text;
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let start = self.at;
            let len = self.b[start..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            if self.b[start + len] != b'"' {
                return None;
            }
            self.at = start + len + 1;
            self.eat(b':')?;
            member(self, &text[start..start + len])?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[ <item>, ... ]`, `item` reading each element.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value, as a value tree (the small fields: study, direction, pruner).
    fn value(&mut self) -> Option<Value> {
        let mut values =
            serde_json::Deserializer::from_str(&self.text[self.at..]).into_iter::<Value>();
        let v = values.next()?.ok()?;
        self.at += values.byte_offset();
        Some(v)
    }

    fn root(&mut self) -> Option<ReplayInput> {
        let (mut study, mut direction, mut pruner, mut trials) = (None, None, None, None);
        self.object(|p, key| {
            match key {
                "study" if study.is_none() => {
                    study = Some(match p.value()? {
                        Value::Null => None,
                        Value::String(s) => Some(s),
                        _ => return None,
                    })
                }
                "direction" if direction.is_none() => {
                    direction = Some(match p.value()? {
                        Value::Null => Direction::Minimize,
                        Value::String(s) if s == "minimize" => Direction::Minimize,
                        Value::String(s) if s == "maximize" => Direction::Maximize,
                        _ => return None,
                    })
                }
                "pruner" if pruner.is_none() => {
                    let v = p.value()?;
                    // Read alone, the spec has the whole of serde_json's nesting limit; in
                    // the document, one level less. Leave deep specs to the general parser.
                    if depth(&v) > 64 {
                        return None;
                    }
                    pruner = Some(PrunerSpec::deserialize(&v).ok()?);
                }
                "trials" if trials.is_none() => trials = Some(p.trials()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(ReplayInput {
            study: study.flatten().unwrap_or_else(|| "replay".to_string()),
            direction: direction.unwrap_or(Direction::Minimize),
            pruner: pruner?,
            trials: trials?,
        })
    }

    fn trials(&mut self) -> Option<Vec<Curve>> {
        let mut trials: Vec<Curve> = Vec::new();
        self.array(|p| {
            // Curves are usually alike in length: size each one like the one before.
            let len_hint = trials.last().map_or(0, |c| c.values.len());
            trials.push(p.curve(len_hint)?);
            Some(())
        })?;
        Some(trials)
    }

    fn curve(&mut self, len_hint: usize) -> Option<Curve> {
        let (mut values, mut steps) = (None, None);
        self.object(|p, key| {
            match key {
                "values" if values.is_none() => values = Some(p.values(len_hint)?),
                "steps" if steps.is_none() => steps = Some(p.steps(len_hint)?),
                _ => return None,
            }
            Some(())
        })?;
        let (values, steps) = (values?, steps.flatten());
        if steps.as_ref().is_some_and(|s| s.len() != values.len()) {
            return None;
        }
        Some(Curve { steps, values })
    }

    /// Numbers and nulls (NaN). The hot loop: written out rather than through `array`,
    /// the usual `, ` between numbers checked first.
    fn values(&mut self, len_hint: usize) -> Option<Vec<f64>> {
        let mut values = Vec::with_capacity(len_hint);
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(values);
        }
        loop {
            self.ws();
            values.push(if self.b.get(self.at) == Some(&b'n') {
                if !self.eat_null() {
                    return None;
                }
                f64::NAN
            } else {
                self.number()?
            });
            let next = match self.b.get(self.at) {
                Some(&c @ (b',' | b']')) => c,
                _ => self.peek()?,
            };
            self.at += 1;
            match next {
                b',' => {}
                b']' => return Some(values),
                _ => return None,
            }
        }
    }

    /// `null`, or non-negative integers.
    fn steps(&mut self, len_hint: usize) -> Option<Option<Vec<i64>>> {
        if self.eat_null() {
            return Some(None);
        }
        let mut steps = Vec::with_capacity(len_hint);
        self.array(|p| {
            p.ws();
            let digits = p.b[p.at..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            // Up to 18 digits always fit an i64; a leading zero, a sign, a fraction or an
            // exponent is for the general parser to accept or refuse.
            if digits == 0 || digits > 18 || (digits > 1 && p.b[p.at] == b'0') {
                return None;
            }
            let end = p.at + digits;
            if let Some(b'.' | b'e' | b'E') = p.b.get(end) {
                return None;
            }
            steps.push(p.text[p.at..end].parse().ok()?);
            p.at = end;
            Some(())
        })?;
        Some(Some(steps))
    }

    /// A JSON number as the replay reads it through serde_json: an integer as `u64` or
    /// `i64` then `f64`, anything with a fraction or an exponent correctly rounded.
    fn number(&mut self) -> Option<f64> {
        let (b, start) = (self.b, self.at);
        let negative = b.get(start) == Some(&b'-');
        let int_start = start + usize::from(negative);
        let (sig, int_end) = digits(b, int_start, 0);
        let int_digits = int_end - int_start;
        if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
            return None;
        }
        let mut i = int_end;
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            let frac_start = i + 1;
            (_, i) = fraction_digits(b, frac_start, 0);
            if i == frac_start {
                return None;
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'-' | b'+') = b.get(i) {
                i += 1;
            }
            let (_, end) = digits(b, i, 0);
            if end == i {
                return None;
            }
            i = end;
            integer = false;
        }
        self.at = i;
        if integer && int_digits <= 19 {
            let magnitude = to_f64(sig);
            return Some(if negative { -magnitude } else { magnitude });
        }
        // Correctly rounded, as serde_json with `float_roundtrip` (and Python, which wrote
        // most inputs) reads it; out of range is an error there too.
        self.text[start..i]
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
    }
}

/// As [`digits`], for a fraction: its length varies from number to number, so a loop per
/// digit mispredicts its exit about once a number; up to 7 digits are read at once from
/// eight bytes instead.
fn fraction_digits(b: &[u8], i: usize, acc: u64) -> (u64, usize) {
    if let Some(&chunk) = b.get(i..i + 8).and_then(|s| <&[u8; 8]>::try_from(s).ok()) {
        // Each byte minus '0': digits are 0..=9, the first other byte 10 or more or
        // wrapped (the borrow may garble the bytes after it, which are not used).
        let x = u64::from_le_bytes(chunk).wrapping_sub(0x3030_3030_3030_3030);
        let other = (x.wrapping_add(0x7676_7676_7676_7676) | x) & 0x8080_8080_8080_8080;
        if other != 0 {
            let n = other.trailing_zeros() / 8;
            if n == 0 {
                return (acc, i);
            }
            // The n digits moved up to the top bytes, zeros below (leading zeros of an
            // eight-digit number), then combined pairwise: 2, 4, then 8 digits.
            let v = x << (64 - 8 * n);
            let v = v.wrapping_mul(10).wrapping_add(v >> 8);
            let v = (v & 0x0000_00FF_0000_00FF)
                .wrapping_mul(100 + (1_000_000 << 32))
                .wrapping_add(((v >> 16) & 0x0000_00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)))
                >> 32
                & 0xFFFF_FFFF;
            const SCALE: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];
            let n = n as usize;
            return (acc.wrapping_mul(SCALE[n]).wrapping_add(v), i + n);
        }
    }
    digits(b, i, acc)
}

/// The decimal digits from `i` on, appended to `acc` (wrapping past 19 digits: callers
/// count them), and where they end.
fn digits(b: &[u8], mut i: usize, mut acc: u64) -> (u64, usize) {
    while let Some(&c @ b'0'..=b'9') = b.get(i) {
        acc = acc.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        i += 1;
    }
    (acc, i)
}

/// `n as f64`, through `i64` where it fits (one instruction rather than several; the same
/// value).
fn to_f64(n: u64) -> f64 {
    match i64::try_from(n) {
        Ok(n) => n as f64,
        Err(_) => n as f64,
    }
}

/// Nesting depth of a value (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_digits_are_digits() {
        // Digits, the bytes next to '0' and '9', and bytes that wrap when '0' is taken away.
        let alphabet = b"0123456789012345.,e]-\xff/:";
        let mut x: u64 = 0x853c_49e6_748f_ea9b;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let b: Vec<u8> = (0..len)
                .map(|k| alphabet[((x >> (k * 2 % 56)) as usize + k) % alphabet.len()])
                .collect();
            let at = (x >> 58) as usize % (len + 1);
            assert_eq!(
                fraction_digits(&b, at, x >> 40),
                digits(&b, at, x >> 40),
                "{b:?} at {at}"
            );
        }
    }
}
