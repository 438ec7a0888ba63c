//! Reads what the OCR weights need from an ONNX file: the float constants (PP-OCR's exports
//! keep every weight in a `Constant` node or an initializer) and the model's metadata (the
//! recogniser's character list). A small protobuf reader, because only these few fields of
//! `ModelProto` matter and a full ONNX dependency would cost minutes of build for them.

use std::collections::HashMap;

use anyhow::{Context, bail};

/// One float tensor: its shape and values.
#[derive(Debug, Clone)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
}

/// The parts of an ONNX model the importer uses.
#[derive(Debug, Default)]
pub struct OnnxModel {
    /// Float constants by output (or initializer) name.
    pub constants: HashMap<String, Constant>,
    /// `metadata_props` key → value.
    pub metadata: HashMap<String, String>,
}

// Field numbers from onnx.proto3.
const MODEL_GRAPH: u32 = 7;
const MODEL_METADATA: u32 = 14;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const NODE_OUTPUT: u32 = 2;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const ATTRIBUTE_NAME: u32 = 1;
const ATTRIBUTE_TENSOR: u32 = 5;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_FLOAT_DATA: u32 = 4;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
const FLOAT: u64 = 1;

/// A decoded protobuf field.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
    Fixed64,
}

/// Iterates over the fields of one protobuf message.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> anyhow::Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().context("truncated varint")?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        if n > self.buf.len() {
            bail!("field of {n} bytes runs past the end of its message");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = anyhow::Result<(u32, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let mut read = || -> anyhow::Result<(u32, Value<'a>)> {
            let key = self.varint()?;
            let field = u32::try_from(key >> 3).context("field number")?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => {
                    self.take(8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = usize::try_from(self.varint()?).context("length")?;
                    Value::Bytes(self.take(n)?)
                }
                5 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into()?)),
                t => bail!("unsupported protobuf wire type {t}"),
            };
            Ok((field, value))
        };
        let item = read();
        if item.is_err() {
            self.buf = &[];
        }
        Some(item)
    }
}

fn string(bytes: &[u8]) -> anyhow::Result<String> {
    Ok(std::str::from_utf8(bytes)
        .context("a name is not UTF-8")?
        .to_owned())
}

/// Parses the constants and metadata of an ONNX model.
pub fn read(bytes: &[u8]) -> anyhow::Result<OnnxModel> {
    let mut model = OnnxModel::default();
    for field in Fields::new(bytes) {
        match field? {
            (MODEL_GRAPH, Value::Bytes(graph)) => read_graph(graph, &mut model)?,
            (MODEL_METADATA, Value::Bytes(entry)) => {
                let (mut key, mut value) = (String::new(), String::new());
                for f in Fields::new(entry) {
                    match f? {
                        (ENTRY_KEY, Value::Bytes(b)) => key = string(b)?,
                        (ENTRY_VALUE, Value::Bytes(b)) => value = string(b)?,
                        _ => {}
                    }
                }
                model.metadata.insert(key, value);
            }
            _ => {}
        }
    }
    if model.constants.is_empty() {
        bail!("no float constants found: not an ONNX model with embedded weights");
    }
    Ok(model)
}

fn read_graph(graph: &[u8], model: &mut OnnxModel) -> anyhow::Result<()> {
    for field in Fields::new(graph) {
        match field? {
            (GRAPH_NODE, Value::Bytes(node)) => {
                let (mut op, mut output, mut tensor) = (String::new(), None, None);
                for f in Fields::new(node) {
                    match f? {
                        (NODE_OP_TYPE, Value::Bytes(b)) => op = string(b)?,
                        (NODE_OUTPUT, Value::Bytes(b)) if output.is_none() => {
                            output = Some(string(b)?);
                        }
                        (NODE_ATTRIBUTE, Value::Bytes(attr)) => {
                            let (mut name, mut t) = (String::new(), None);
                            for a in Fields::new(attr) {
                                match a? {
                                    (ATTRIBUTE_NAME, Value::Bytes(b)) => name = string(b)?,
                                    (ATTRIBUTE_TENSOR, Value::Bytes(b)) => t = Some(b),
                                    _ => {}
                                }
                            }
                            if name == "value" {
                                tensor = t;
                            }
                        }
                        _ => {}
                    }
                }
                if let (true, Some(out), Some(t)) = (op == "Constant", output, tensor)
                    && let Some((_, c)) = read_tensor(t)?
                {
                    model.constants.insert(out, c);
                }
            }
            (GRAPH_INITIALIZER, Value::Bytes(t)) => {
                if let Some((name, c)) = read_tensor(t)? {
                    model.constants.insert(name, c);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A float `TensorProto` (raw little-endian data or `float_data`); `None` for other types.
fn read_tensor(t: &[u8]) -> anyhow::Result<Option<(String, Constant)>> {
    let (mut dims, mut dtype, mut name) = (Vec::new(), 0u64, String::new());
    let mut values = Vec::new();
    for f in Fields::new(t) {
        match f? {
            (TENSOR_DIMS, Value::Varint(d)) => dims.push(usize::try_from(d)?),
            (TENSOR_DIMS, Value::Bytes(packed)) => {
                let mut p = Fields::new(packed);
                while !p.buf.is_empty() {
                    dims.push(usize::try_from(p.varint()?)?);
                }
            }
            (TENSOR_DATA_TYPE, Value::Varint(d)) => dtype = d,
            (TENSOR_NAME, Value::Bytes(b)) => name = string(b)?,
            (TENSOR_RAW_DATA | TENSOR_FLOAT_DATA, Value::Bytes(b)) => {
                values.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
            (TENSOR_FLOAT_DATA, Value::Fixed32(v)) => values.push(f32::from_bits(v)),
            _ => {}
        }
    }
    if dtype != FLOAT {
        return Ok(None);
    }
    let expected: usize = dims.iter().product();
    if values.len() != expected {
        bail!(
            "tensor {name:?} has {} values for shape {dims:?}",
            values.len()
        );
    }
    Ok(Some((name, Constant { dims, values })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(field: u32, body: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(field) << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    /// A hand-built model: one Constant node (2×2 floats), one initializer, metadata.
    #[test]
    fn reads_constants_initializers_and_metadata() {
        let mut tensor = Vec::new();
        varint(u64::from(TENSOR_DIMS) << 3, &mut tensor);
        varint(2, &mut tensor);
        varint(u64::from(TENSOR_DIMS) << 3, &mut tensor);
        varint(2, &mut tensor);
        varint(u64::from(TENSOR_DATA_TYPE) << 3, &mut tensor);
        varint(FLOAT, &mut tensor);
        let raw: Vec<u8> = [1.0f32, -2.0, 3.5, 0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        bytes_field(TENSOR_RAW_DATA, &raw, &mut tensor);
        let mut attr = Vec::new();
        bytes_field(ATTRIBUTE_NAME, b"value", &mut attr);
        bytes_field(ATTRIBUTE_TENSOR, &tensor, &mut attr);
        let mut node = Vec::new();
        bytes_field(NODE_OUTPUT, b"w0", &mut node);
        bytes_field(NODE_OP_TYPE, b"Constant", &mut node);
        bytes_field(NODE_ATTRIBUTE, &attr, &mut node);
        let mut init = tensor.clone();
        bytes_field(TENSOR_NAME, b"w1", &mut init);
        let mut graph = Vec::new();
        bytes_field(GRAPH_NODE, &node, &mut graph);
        bytes_field(GRAPH_INITIALIZER, &init, &mut graph);
        let mut entry = Vec::new();
        bytes_field(ENTRY_KEY, b"character", &mut entry);
        bytes_field(ENTRY_VALUE, "a\n漢".as_bytes(), &mut entry);
        let mut model = Vec::new();
        bytes_field(MODEL_GRAPH, &graph, &mut model);
        bytes_field(MODEL_METADATA, &entry, &mut model);

        let m = read(&model).unwrap();
        for name in ["w0", "w1"] {
            assert_eq!(m.constants[name].dims, [2, 2]);
            assert_eq!(m.constants[name].values, [1.0, -2.0, 3.5, 0.25]);
        }
        assert_eq!(m.metadata["character"], "a\n漢");
        let cut = &model[..model.len() - 3];
        assert!(read(cut).is_err(), "a truncated file is an error");
    }
}
