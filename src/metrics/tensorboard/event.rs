//! The parts of TensorFlow's `Event` and `Summary` protobuf messages that carry scalars
//! (tensorflow/core/util/event.proto, framework/summary.proto, tensor.proto), derived with
//! `prost` instead of generated from the `.proto` files (no `protoc` at build time). Fields
//! left out are skipped by the decoder, as protobuf requires, so any event decodes.

use prost::Message;

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `file_version` (the first record of every file, e.g. `brain.Event:2`).
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: a scalar is either `simple_value` (the classic form) or a
/// rank-0 `tensor` (the "new style" of `torch.utils.tensorboard`, tensorboardX and TF 2).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
}

/// `tensorflow.TensorProto`, the fields a scalar can use.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    /// Half and bfloat16 values, as their bit patterns in the low 16 bits.
    #[prost(int32, repeated, tag = "13")]
    pub half_val: Vec<i32>,
}

// tensorflow.DataType values a scalar metric can have.
const DT_FLOAT: i32 = 1;
const DT_DOUBLE: i32 = 2;
const DT_INT32: i32 = 3;
const DT_INT64: i32 = 9;
const DT_BFLOAT16: i32 = 14;
const DT_HALF: i32 = 19;

impl TensorProto {
    /// The value of a scalar (or the first element of a one-element tensor).
    pub fn scalar(&self) -> Option<f64> {
        if let Some(v) = self.float_val.first() {
            return Some(*v as f64);
        }
        if let Some(v) = self.double_val.first() {
            return Some(*v);
        }
        if let Some(v) = self.half_val.first() {
            return Some(match self.dtype {
                DT_BFLOAT16 => f32::from_bits((*v as u32 & 0xffff) << 16) as f64,
                _ => f16_to_f64(*v as u16),
            });
        }
        if let Some(v) = self.int_val.first() {
            return Some(*v as f64);
        }
        if let Some(v) = self.int64_val.first() {
            return Some(*v as f64);
        }
        let b = &self.tensor_content;
        match self.dtype {
            DT_FLOAT if b.len() >= 4 => Some(f32::from_le_bytes(b[..4].try_into().ok()?) as f64),
            DT_DOUBLE if b.len() >= 8 => Some(f64::from_le_bytes(b[..8].try_into().ok()?)),
            DT_INT32 if b.len() >= 4 => Some(i32::from_le_bytes(b[..4].try_into().ok()?) as f64),
            DT_INT64 if b.len() >= 8 => Some(i64::from_le_bytes(b[..8].try_into().ok()?) as f64),
            DT_HALF if b.len() >= 2 => Some(f16_to_f64(u16::from_le_bytes([b[0], b[1]]))),
            DT_BFLOAT16 if b.len() >= 2 => {
                Some(f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64)
            }
            _ => None,
        }
    }
}

/// IEEE half precision to f64.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// Decodes one record's data and returns `(step, value)` of `tag` if the event carries it.
pub fn scalar(data: &[u8], tag: &str) -> Result<Option<(i64, f64)>, prost::DecodeError> {
    let event = Event::decode(data)?;
    let Some(summary) = event.summary else {
        return Ok(None);
    };
    Ok(summary
        .value
        .iter()
        .filter(|v| v.tag == tag)
        .find_map(|v| {
            v.simple_value
                .map(f64::from)
                .or_else(|| v.tensor.as_ref().and_then(TensorProto::scalar))
        })
        .map(|v| (event.step, v)))
}

/// An event carrying one `simple_value` scalar (for tests and fixtures).
pub fn simple_scalar_event(step: i64, tag: &str, value: f32) -> Vec<u8> {
    Event {
        wall_time: 1.0,
        step,
        file_version: None,
        summary: Some(Summary {
            value: vec![SummaryValue {
                tag: tag.into(),
                simple_value: Some(value),
                tensor: None,
            }],
        }),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_tensor_scalars() {
        let data = simple_scalar_event(7, "val_loss", 0.25);
        assert_eq!(scalar(&data, "val_loss").unwrap(), Some((7, 0.25)));
        assert_eq!(scalar(&data, "other").unwrap(), None);
        let tensor = |t: TensorProto| {
            Event {
                wall_time: 0.0,
                step: 3,
                file_version: None,
                summary: Some(Summary {
                    value: vec![SummaryValue {
                        tag: "loss".into(),
                        simple_value: None,
                        tensor: Some(t),
                    }],
                }),
            }
            .encode_to_vec()
        };
        let base = TensorProto {
            dtype: DT_FLOAT,
            tensor_content: vec![],
            float_val: vec![],
            double_val: vec![],
            int_val: vec![],
            int64_val: vec![],
            half_val: vec![],
        };
        let cases = [
            (
                TensorProto {
                    float_val: vec![1.5],
                    ..base.clone()
                },
                1.5,
            ),
            (
                TensorProto {
                    dtype: DT_DOUBLE,
                    double_val: vec![0.125],
                    ..base.clone()
                },
                0.125,
            ),
            (
                TensorProto {
                    tensor_content: 2.5f32.to_le_bytes().to_vec(),
                    ..base.clone()
                },
                2.5,
            ),
            (
                TensorProto {
                    dtype: DT_HALF,
                    half_val: vec![0x3c00],
                    ..base.clone()
                },
                1.0,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(scalar(&tensor(t), "loss").unwrap(), Some((3, want)));
        }
        // Not an event at all: a decode error, not a panic.
        assert!(scalar(&[0xff, 0xff, 0xff], "loss").is_err());
        // A file_version record carries no scalar.
        let v = Event {
            wall_time: 1.0,
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        }
        .encode_to_vec();
        assert_eq!(scalar(&v, "loss").unwrap(), None);
    }
}
