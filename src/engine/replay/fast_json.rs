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
    /// `i64` then `f64`, anything with a fraction or an exponent through serde_json's
    /// significand-and-exponent conversion ([`f64_from_parts`]).
    fn number(&mut self) -> Option<f64> {
        let (b, start) = (self.b, self.at);
        let negative = b.get(start) == Some(&b'-');
        let int_start = start + usize::from(negative);
        // serde_json's significand (the digits, point left out) and decimal exponent.
        let (sig, int_end) = digits(b, int_start, 0);
        let int_digits = int_end - int_start;
        if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
            return None;
        }
        let (mut sig, mut i, mut exp, mut integer) = (sig, int_end, 0i32, true);
        if b.get(i) == Some(&b'.') {
            let frac_start = i + 1;
            (sig, i) = fraction_digits(b, frac_start, sig);
            if i == frac_start {
                return None;
            }
            exp = -((i - frac_start) as i32);
            integer = false;
        }
        // Up to 19 digits always fit the u64 significand.
        let mut plain = int_digits + exp.unsigned_abs() as usize <= 19;
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            let negative_exp = b.get(i) == Some(&b'-');
            if let Some(b'-' | b'+') = b.get(i) {
                i += 1;
            }
            let (e, end) = digits(b, i, 0);
            match end - i {
                0 => return None,
                // Longer exponents overflow in serde_json's own way.
                1..=4 => exp += if negative_exp { -(e as i32) } else { e as i32 },
                _ => plain = false,
            }
            i = end;
            integer = false;
        }
        self.at = i;
        if !plain {
            // Digits past a u64 (serde_json drops or counts them): rare, so ask serde_json.
            return serde_json::from_str(&self.text[start..i]).ok();
        }
        let magnitude = if integer {
            to_f64(sig)
        } else {
            f64_from_parts(sig, exp)?
        };
        Some(if negative { -magnitude } else { magnitude })
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

/// serde_json's `f64_from_parts` (without its `float_roundtrip` feature, as built here):
/// `significand * 10^exponent`, `None` where serde_json reports a number out of range.
fn f64_from_parts(significand: u64, mut exponent: i32) -> Option<f64> {
    let mut f = to_f64(significand);
    loop {
        match POW10.get(exponent.unsigned_abs() as usize) {
            Some(&pow) => {
                if exponent >= 0 {
                    f *= pow;
                    if f.is_infinite() {
                        return None;
                    }
                } else {
                    f /= pow;
                }
                return Some(f);
            }
            None => {
                if f == 0.0 {
                    return Some(f);
                }
                if exponent >= 0 {
                    return None;
                }
                f /= 1e308;
                exponent += 308;
            }
        }
    }
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

/// serde_json's table of powers of ten.
#[rustfmt::skip]
static POW10: [f64; 309] = [
    1e000, 1e001, 1e002, 1e003, 1e004, 1e005, 1e006, 1e007, 1e008, 1e009, //
    1e010, 1e011, 1e012, 1e013, 1e014, 1e015, 1e016, 1e017, 1e018, 1e019, //
    1e020, 1e021, 1e022, 1e023, 1e024, 1e025, 1e026, 1e027, 1e028, 1e029, //
    1e030, 1e031, 1e032, 1e033, 1e034, 1e035, 1e036, 1e037, 1e038, 1e039, //
    1e040, 1e041, 1e042, 1e043, 1e044, 1e045, 1e046, 1e047, 1e048, 1e049, //
    1e050, 1e051, 1e052, 1e053, 1e054, 1e055, 1e056, 1e057, 1e058, 1e059, //
    1e060, 1e061, 1e062, 1e063, 1e064, 1e065, 1e066, 1e067, 1e068, 1e069, //
    1e070, 1e071, 1e072, 1e073, 1e074, 1e075, 1e076, 1e077, 1e078, 1e079, //
    1e080, 1e081, 1e082, 1e083, 1e084, 1e085, 1e086, 1e087, 1e088, 1e089, //
    1e090, 1e091, 1e092, 1e093, 1e094, 1e095, 1e096, 1e097, 1e098, 1e099, //
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109, //
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119, //
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129, //
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139, //
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149, //
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159, //
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169, //
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179, //
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189, //
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199, //
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209, //
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219, //
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229, //
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239, //
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249, //
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259, //
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269, //
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279, //
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289, //
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, //
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308, //
];

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
