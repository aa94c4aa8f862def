//! `Prediction` records (`schemas/prediction.avsc`) in Avro binary, a batch at a time.
//!
//! The layout is the one `stream_scorer/pipeline/emit.py` writes and checks at construction against the
//! parsed schema; its tests compare both encoders with fastavro byte for byte.

use numpy::{PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

fn long(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn double(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// One feature group's freshness: its name (Avro-encoded), status codes and ages (-1: null).
type Group<'py> = (Vec<u8>, PyReadonlyArray1<'py, i8>, PyReadonlyArray1<'py, i64>);

/// The batch's encoded predictions, one `bytes` per row. `head` is the encoded model name and version,
/// `features` and `shadow_heads` the encoded feature names and challenger (name, version) pairs;
/// `passthrough` the encoded passthrough map of every row, or None for an empty map.
#[pyfunction]
#[pyo3(signature = (frame, event_ids, head, scores, threshold, decisions, imputed, freshness, event_time, consumed_at, scored_at, reason_index, reason_value, features, shadow_heads, shadow_scores, shadow_decisions, keys, passthrough))]
#[allow(clippy::too_many_arguments)]
pub fn encode_predictions<'py>(
    py: Python<'py>,
    frame: &[u8],
    event_ids: &Bound<'py, PyList>,
    head: &[u8],
    scores: PyReadonlyArray1<'py, f64>,
    threshold: f64,
    decisions: PyReadonlyArray1<'py, bool>,
    imputed: PyReadonlyArray1<'py, bool>,
    freshness: Vec<Group<'py>>,
    event_time: PyReadonlyArray1<'py, i64>,
    consumed_at: PyReadonlyArray1<'py, i64>,
    scored_at: i64,
    reason_index: PyReadonlyArray2<'py, i64>,
    reason_value: PyReadonlyArray2<'py, f64>,
    features: Vec<Vec<u8>>,
    shadow_heads: Vec<Vec<u8>>,
    shadow_scores: PyReadonlyArray2<'py, f64>,
    shadow_decisions: PyReadonlyArray2<'py, bool>,
    keys: &Bound<'py, PyList>,
    passthrough: Option<&Bound<'py, PyList>>,
) -> PyResult<Bound<'py, PyList>> {
    let n = event_ids.len();
    let (scores, decisions, imputed) = (scores.as_slice()?, decisions.as_slice()?, imputed.as_slice()?);
    let (event_time, consumed_at) = (event_time.as_slice()?, consumed_at.as_slice()?);
    let groups: Vec<(&[u8], &[i8], &[i64])> =
        freshness.iter().map(|(name, s, a)| Ok((name.as_slice(), s.as_slice()?, a.as_slice()?))).collect::<PyResult<_>>()?;
    let (reason_index, reason_value) = (reason_index.as_array(), reason_value.as_array());
    let k = if reason_index.nrows() == n { reason_index.ncols() } else { 0 };
    let (shadow_scores, shadow_decisions) = (shadow_scores.as_array(), shadow_decisions.as_array());
    let m = if shadow_scores.dim() == (n, shadow_heads.len()) { shadow_heads.len() } else { 0 };
    for (what, len) in [("scores", scores.len()), ("decisions", decisions.len()), ("event_time", event_time.len())] {
        if len != n {
            return Err(pyo3::exceptions::PyValueError::new_err(format!("{what}: {len} rows for {n} events")));
        }
    }
    let out = PyList::empty(py);
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    for i in 0..n {
        buf.clear();
        buf.extend_from_slice(frame);
        let id = event_ids.get_item(i)?;
        bytes(&mut buf, id.cast::<PyString>()?.to_str()?.as_bytes());
        buf.extend_from_slice(head);
        double(&mut buf, scores[i]);
        double(&mut buf, threshold);
        buf.push(u8::from(decisions[i]));
        buf.push(u8::from(imputed[i]));
        if !groups.is_empty() {
            long(&mut buf, groups.len() as i64);
            for (name, status, ages) in &groups {
                buf.extend_from_slice(name);
                long(&mut buf, i64::from(status[i]));
                if ages[i] >= 0 {
                    buf.push(2);
                    long(&mut buf, ages[i]);
                } else {
                    buf.push(0);
                }
            }
        }
        buf.push(0);
        long(&mut buf, event_time[i]);
        long(&mut buf, consumed_at[i]);
        long(&mut buf, scored_at);
        if k > 0 {
            long(&mut buf, k as i64);
            for j in 0..k {
                let f = reason_index[[i, j]];
                let name = usize::try_from(f).ok().and_then(|f| features.get(f));
                buf.extend_from_slice(name.ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(format!("feature {f}")))?);
                double(&mut buf, reason_value[[i, j]]);
            }
        }
        buf.push(0);
        if m > 0 {
            long(&mut buf, m as i64);
            for (j, heading) in shadow_heads.iter().enumerate() {
                buf.extend_from_slice(heading);
                double(&mut buf, shadow_scores[[i, j]]);
                buf.push(u8::from(shadow_decisions[[i, j]]));
            }
        }
        buf.push(0);
        let key = keys.get_item(i)?;
        if key.is_none() {
            buf.push(0);
        } else {
            buf.push(2);
            bytes(&mut buf, key.cast::<PyBytes>()?.as_bytes());
        }
        match passthrough {
            Some(maps) => buf.extend_from_slice(maps.get_item(i)?.cast::<PyBytes>()?.as_bytes()),
            None => buf.push(0),
        }
        out.append(PyBytes::new(py, &buf))?;
    }
    Ok(out)
}
