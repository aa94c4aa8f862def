//! The per-key work of a feature read, a batch at a time: Redis commands packed into RESP, and packed
//! feature records (`stream_scorer/features/layout.py`) parsed into columns.
//!
//! Both mirror a Python reference (redis-py's command packing, `layout.unpack_many`) that the tests compare
//! them with; the Redis connection, its TLS, authentication, retries and reply parsing stay redis-py's.

use numpy::ndarray::Array2;
use numpy::{PyArray1, PyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

const MAGIC: &[u8; 2] = b"SF";
const LAYOUT_VERSION: u16 = 1;
const HEADER: usize = 16;

fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(arg.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

/// One argument's bytes as redis-py encodes it: bytes as they are, str as UTF-8, int in decimal, float by
/// its `repr`; anything else (a bool, None) is refused, as redis-py refuses it.
fn argument(arg: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    if let Ok(b) = arg.cast::<PyBytes>() {
        bulk(out, b.as_bytes());
    } else if let Ok(s) = arg.cast::<PyString>() {
        bulk(out, s.to_str()?.as_bytes());
    } else if arg.is_instance_of::<PyInt>() && !arg.is_instance_of::<pyo3::types::PyBool>() {
        bulk(out, arg.str()?.to_str()?.as_bytes());
    } else if arg.is_instance_of::<PyFloat>() {
        bulk(out, arg.repr()?.to_str()?.as_bytes());
    } else {
        let kind = arg.get_type().name()?;
        return Err(PyTypeError::new_err(format!("a Redis argument must be bytes, str, int or float, not {kind}")));
    }
    Ok(())
}

/// The commands (each a tuple of arguments) in the Redis protocol, one buffer for a pipeline. A command
/// name holding spaces ("SCRIPT LOAD") is sent as its words, as redis-py sends it.
#[pyfunction]
pub fn pack_commands<'py>(py: Python<'py>, commands: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out: Vec<u8> = Vec::new();
    let mut words: Vec<Vec<u8>> = Vec::new();
    for command in commands.iter() {
        let args = command.cast::<PyTuple>()?;
        let name = args.get_item(0).map_err(|_| PyValueError::new_err("a Redis command needs a name"))?;
        words.clear();
        let name_bytes: Vec<u8> = match name.cast::<PyString>() {
            Ok(s) => s.to_str()?.as_bytes().to_vec(),
            Err(_) => name.cast::<PyBytes>()?.as_bytes().to_vec(),
        };
        words.extend(name_bytes.split(|&b| b == b' ').filter(|w| !w.is_empty()).map(<[u8]>::to_vec));
        out.push(b'*');
        out.extend_from_slice((words.len() + args.len() - 1).to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        for word in &words {
            bulk(&mut out, word);
        }
        for arg in args.iter().skip(1) {
            argument(&arg, &mut out)?;
        }
    }
    Ok(PyBytes::new(py, &out))
}

/// Packed feature records (MGET replies, `None` for a missing key) as columns: values (n, k) as float64,
/// `updated_at_ms`, `readable` (the right size, magic, layout, group version and count, finite values)
/// and `found` (a reply that is not `None`). Rows that are not readable hold zeros.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn unpack_records<'py>(
    py: Python<'py>,
    replies: &Bound<'py, PyList>,
    n_features: usize,
    version: u16,
) -> PyResult<(
    Bound<'py, PyArray2<f64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<bool>>,
)> {
    let n = replies.len();
    let size = HEADER + 4 * n_features;
    let mut values = Array2::<f64>::zeros((n, n_features));
    let mut updated = vec![0i64; n];
    let mut readable = vec![false; n];
    let mut found = vec![false; n];
    let mut row = vec![0f64; n_features];
    for (i, reply) in replies.iter().enumerate() {
        if reply.is_none() {
            continue;
        }
        found[i] = true;
        let Ok(blob) = reply.cast::<PyBytes>() else { continue };
        let b = blob.as_bytes();
        let u16_at = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        if b.len() != size || &b[0..2] != MAGIC || u16_at(2) != LAYOUT_VERSION || u16_at(4) != version {
            continue;
        }
        if usize::from(u16_at(6)) != n_features {
            continue;
        }
        for (j, slot) in row.iter_mut().enumerate() {
            let at = HEADER + 4 * j;
            *slot = f64::from(f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
        }
        if row.iter().all(|v| v.is_finite()) {
            values.row_mut(i).iter_mut().zip(&row).for_each(|(slot, v)| *slot = *v);
            updated[i] = i64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
            readable[i] = true;
        }
    }
    Ok((
        PyArray2::from_owned_array(py, values),
        PyArray1::from_vec(py, updated),
        PyArray1::from_vec(py, readable),
        PyArray1::from_vec(py, found),
    ))
}
