//! stream-scorer's native Avro codec: Kafka message values to columns, strictly (here), and predictions
//! to Avro (`encode`); and the per-key work of a feature read (`resp`).
//!
//! Each body is first checked against its writer schema by the strict rules of `validate` (canonical
//! encoding, exactly one value, no trailing bytes); only bodies that pass reach Apache Arrow's arrow-avro,
//! which resolves them against the reader schema, projected to the fields that are read. A body arrow-avro
//! still refuses (a writer's enum symbol the reader lacks, say) is `incompatible_schema`; its decoder is
//! rebuilt and the batch's other bodies decoded again, since arrow-avro cannot take a partial row back.

mod columns;
mod encode;
mod resp;
mod validate;

use std::collections::HashMap;

use arrow_array::RecordBatch;
use arrow_avro::reader::{Decoder as ArrowDecoder, DecoderMode, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, SchemaStore};
use arrow_schema::{DataType, Schema};
use numpy::PyArray1;
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde_json::Value;

use columns::Data;
use validate::{Bad, Tree};

const CONFLUENT_HEADER: usize = 5;
const ROWS_PER_ARROW_BATCH: usize = 8192;

create_exception!(stream_scorer_native, DecodeFailed, PyRuntimeError, "arrow-avro failed on bodies the strict check accepted: decode the batch another way");

/// A writer schema: its strict tree, and arrow-avro's decoder from it to the reader schema (or why not).
struct Writer {
    tree: Tree,
    json: String,
    decoder: Result<ArrowDecoder, String>,
}

/// A rejected message: its position in the batch, the reason, a detail, and its schema id.
type Rejected = (usize, &'static str, String, Option<u32>);

#[pyclass(module = "stream_scorer_native")]
struct Decoder {
    reader_json: String,
    projection: Vec<usize>,
    paths: Vec<Vec<String>>,
    confluent: bool,
    max_bytes: usize,
    writers: Vec<Writer>,
    by_id: HashMap<u32, usize>,
}

fn build(reader_json: &str, writer_json: &str, projection: &[usize]) -> Result<ArrowDecoder, String> {
    let mut store = SchemaStore::new();
    let fingerprint = store.register(AvroSchema::new(writer_json.to_string())).map_err(|e| e.to_string())?;
    ReaderBuilder::new()
        .with_reader_schema(AvroSchema::new(reader_json.to_string()))
        .with_writer_schema_store(store)
        .with_active_fingerprint(fingerprint)
        .with_decoder_mode(DecoderMode::UnframedDatum)
        .with_projection(projection.to_vec())
        .with_batch_size(ROWS_PER_ARROW_BATCH)
        .build_decoder()
        .map_err(|e| e.to_string())
}

fn leaf_type(schema: &Schema, path: &[String]) -> Result<DataType, String> {
    let mut data_type = schema.field_with_name(&path[0]).map_err(|e| e.to_string())?.data_type().clone();
    for name in &path[1..] {
        let DataType::Struct(fields) = &data_type else { return Err(format!("{name}: its parent is not a record")) };
        let field = fields.iter().find(|f| f.name() == name).ok_or_else(|| format!("no field {name}"))?;
        data_type = field.data_type().clone();
    }
    Ok(data_type)
}

impl Decoder {
    fn writer(&mut self, json: &str) -> Result<Writer, String> {
        let tree = Tree::parse(json)?;
        let decoder = build(&self.reader_json, json, &self.projection);
        Ok(Writer { tree, json: json.to_string(), decoder })
    }

    /// Decode one writer's bodies into arrow batches; a body arrow-avro refuses is taken out and the rest
    /// decoded again on a new decoder.
    fn decode_group(&mut self, w: usize, rows: &[(usize, &[u8])], bad: &mut Vec<(usize, String)>) -> Result<Vec<RecordBatch>, String> {
        loop {
            let writer = &mut self.writers[w];
            let Ok(decoder) = writer.decoder.as_mut() else { unreachable!("only decodable writers get rows") };
            let mut batches = Vec::new();
            let mut failed = None;
            for (k, (_, body)) in rows.iter().enumerate() {
                if bad.iter().any(|(b, _)| *b == k) {
                    continue;
                }
                if decoder.batch_is_full() {
                    batches.extend(decoder.flush().map_err(|e| format!("arrow-avro could not flush: {e}"))?);
                }
                match decoder.decode(body) {
                    Ok(n) if n == body.len() => {}
                    Ok(n) => failed = Some((k, format!("arrow-avro read {n} of {} bytes", body.len()))),
                    Err(e) => failed = Some((k, e.to_string())),
                }
                if failed.is_some() {
                    break;
                }
            }
            match failed {
                None => {
                    batches.extend(decoder.flush().map_err(|e| format!("arrow-avro could not flush: {e}"))?);
                    let decoded: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    if decoded != rows.len() - bad.len() {
                        let json = writer.json.clone();
                        writer.decoder = build(&self.reader_json, &json, &self.projection);
                        return Err(format!("arrow-avro returned {decoded} rows of {}", rows.len() - bad.len()));
                    }
                    return Ok(batches);
                }
                Some(row) => {
                    bad.push(row);
                    let json = writer.json.clone();
                    writer.decoder = build(&self.reader_json, &json, &self.projection);
                }
            }
        }
    }
}

#[pymethods]
impl Decoder {
    /// `reader_json`: the reader schema (logical types removed); `reader_canonical`: its parsing canonical
    /// form, the writer schema of plain Avro bodies; `paths`: the dotted fields to return, in this order.
    #[new]
    fn new(reader_json: String, reader_canonical: String, paths: Vec<String>, confluent: bool, max_bytes: usize) -> PyResult<Self> {
        let reader: Value = serde_json::from_str(&reader_json).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let names: Vec<&str> = reader["fields"].as_array().map(|f| f.iter().filter_map(|x| x["name"].as_str()).collect()).unwrap_or_default();
        let paths: Vec<Vec<String>> = paths.iter().map(|p| p.split('.').map(str::to_string).collect()).collect();
        let mut projection = Vec::new();
        for path in &paths {
            let index = names.iter().position(|n| *n == path[0]).ok_or_else(|| PyValueError::new_err(format!("no field {}", path[0])))?;
            if !projection.contains(&index) {
                projection.push(index);
            }
        }
        projection.sort_unstable();
        let mut decoder = Decoder { reader_json, projection, paths, confluent, max_bytes, writers: Vec::new(), by_id: HashMap::new() };
        let plain = decoder.writer(&reader_canonical).map_err(PyValueError::new_err)?;
        let schema = plain.decoder.as_ref().map_err(|e| PyValueError::new_err(e.clone()))?.schema();
        for path in &decoder.paths {
            let data_type = leaf_type(&schema, path).map_err(PyValueError::new_err)?;
            columns::check_type(&data_type).map_err(|e| PyValueError::new_err(format!("{}: {e}", path.join("."))))?;
        }
        decoder.writers.push(plain);
        Ok(decoder)
    }

    /// Learn a Confluent schema id's writer schema (parsing canonical form). A schema arrow-avro cannot
    /// resolve against the reader schema is kept: its messages are `incompatible_schema`.
    fn add_writer(&mut self, schema_id: u32, canonical: &str) -> PyResult<()> {
        let writer = self.writer(canonical).map_err(PyValueError::new_err)?;
        self.writers.push(writer);
        self.by_id.insert(schema_id, self.writers.len() - 1);
        Ok(())
    }

    /// Whether a Confluent schema id is known.
    fn knows(&self, schema_id: u32) -> bool {
        self.by_id.contains_key(&schema_id)
    }

    /// Decode a batch of message values (bytes or None). Returns the positions decoded, their schema ids
    /// (-1 for none), the rejected `(position, reason, detail, schema id)`, the `(position, schema id)` of
    /// ids not known, and per path its values and where they are present.
    #[allow(clippy::type_complexity)]
    fn decode<'py>(
        &mut self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>, Vec<Rejected>, Vec<(usize, u32)>, Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>)> {
        let items: Vec<Bound<'py, PyAny>> = values.iter().collect();
        let mut rejected: Vec<Rejected> = Vec::new();
        let mut unknown = Vec::new();
        let mut groups: Vec<Vec<(usize, &[u8])>> = vec![Vec::new(); self.writers.len()];
        let mut group_ids: Vec<Option<u32>> = vec![None; self.writers.len()];
        for (id, &w) in &self.by_id {
            group_ids[w] = Some(*id);
        }
        for (i, item) in items.iter().enumerate() {
            let value: &[u8] = if item.is_none() { &[] } else { item.cast::<PyBytes>()?.as_bytes() };
            if value.is_empty() {
                rejected.push((i, "empty_value", "message has no value".into(), None));
                continue;
            }
            if value.len() > self.max_bytes {
                rejected.push((i, "oversized", format!("{} bytes, over the {}-byte limit", value.len(), self.max_bytes), None));
                continue;
            }
            let (w, body, id) = if self.confluent {
                if value[0] == 0 && value.len() < CONFLUENT_HEADER {
                    rejected.push((i, "malformed_avro", format!("{} bytes: too short for the Confluent header", value.len()), None));
                    continue;
                }
                if value[0] != 0 {
                    rejected.push((i, "bad_magic_byte", format!("expected Confluent magic byte 0, got {}", value[0]), None));
                    continue;
                }
                let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
                let Some(&w) = self.by_id.get(&id) else {
                    unknown.push((i, id));
                    continue;
                };
                (w, &value[CONFLUENT_HEADER..], Some(id))
            } else {
                (0, value, None)
            };
            let writer = &self.writers[w];
            match writer.tree.check(body) {
                Err(Bad::Malformed(detail)) => rejected.push((i, "malformed_avro", detail, id)),
                Err(Bad::Trailing(n)) => rejected.push((i, "trailing_bytes", format!("{n} bytes after the record"), id)),
                Ok(()) => match &writer.decoder {
                    Err(e) => rejected.push((i, "incompatible_schema", e.chars().take(200).collect(), id)),
                    Ok(_) => groups[w].push((i, body)),
                },
            }
        }
        let mut ok: Vec<(usize, usize)> = Vec::new(); // (position, row in the concatenated groups)
        let mut ok_ids = Vec::new();
        let mut data: Vec<Option<Data>> = (0..self.paths.len()).map(|_| None).collect();
        let mut present: Vec<Vec<bool>> = vec![Vec::new(); self.paths.len()];
        let mut rows = 0usize;
        for (w, group) in groups.iter().enumerate() {
            if group.is_empty() {
                continue;
            }
            let mut bad = Vec::new();
            let batches = self.decode_group(w, group, &mut bad).map_err(DecodeFailed::new_err)?;
            for (k, detail) in &bad {
                rejected.push((group[*k].0, "incompatible_schema", detail.chars().take(200).collect(), group_ids[w]));
            }
            for (k, (i, _)) in group.iter().enumerate() {
                if !bad.iter().any(|(b, _)| b == &k) {
                    ok.push((*i, rows));
                    ok_ids.push(group_ids[w].map_or(-1, i64::from));
                    rows += 1;
                }
            }
            for batch in &batches {
                for (p, path) in self.paths.iter().enumerate() {
                    let (array, valid) = columns::at_path(batch, path).map_err(PyValueError::new_err)?;
                    columns::append(py, &array, &valid, &mut data[p]).map_err(PyValueError::new_err)?;
                    present[p].extend(valid);
                }
            }
        }
        let sorted = ok.windows(2).all(|w| w[0].0 < w[1].0);
        let mut order: Vec<usize> = Vec::new();
        if !sorted {
            let mut by_position: Vec<(usize, usize, i64)> = ok.iter().zip(&ok_ids).map(|(&(i, r), &id)| (i, r, id)).collect();
            by_position.sort_unstable();
            order = by_position.iter().map(|x| x.1).collect();
            ok = by_position.iter().map(|x| (x.0, x.1)).collect();
            ok_ids = by_position.iter().map(|x| x.2).collect();
        }
        let order = if sorted { None } else { Some(order.as_slice()) };
        let mut out = Vec::with_capacity(self.paths.len());
        for (p, d) in data.into_iter().enumerate() {
            let values = match d {
                Some(d) => columns::to_numpy(py, d, order),
                None => PyArray1::<i64>::from_vec(py, Vec::new()).into_any(),
            };
            let valid = std::mem::take(&mut present[p]);
            let valid = match order {
                None => valid,
                Some(order) => order.iter().map(|&r| valid[r]).collect(),
            };
            out.push((values, PyArray1::from_vec(py, valid).into_any()));
        }
        rejected.sort_unstable_by_key(|r| r.0);
        let positions: Vec<i64> = ok.iter().map(|x| x.0 as i64).collect();
        Ok((PyArray1::from_vec(py, positions).into_any(), PyArray1::from_vec(py, ok_ids).into_any(), rejected, unknown, out))
    }
}

#[pymodule]
fn stream_scorer_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Decoder>()?;
    m.add_function(wrap_pyfunction!(encode::encode_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(resp::pack_commands, m)?)?;
    m.add_function(wrap_pyfunction!(resp::unpack_records, m)?)?;
    m.add("DecodeFailed", m.py().get_type::<DecodeFailed>())?;
    Ok(())
}
