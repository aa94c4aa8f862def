//! Arrow arrays (what arrow-avro decodes into) to the numpy columns of `stream_scorer.batch.Column`.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// One column's values, by the numpy dtype it becomes; a null's slot holds 0, false or "".
pub enum Data {
    Bool(Vec<bool>),
    Long(Vec<i64>),
    Double(Vec<f64>),
    Code(Vec<i32>),
    Text(Vec<Py<PyAny>>),
}

/// Which [`Data`] an Arrow type becomes, or why it cannot be a column.
pub fn check_type(data_type: &DataType) -> Result<(), String> {
    match data_type {
        DataType::Boolean | DataType::Int32 | DataType::Int64 | DataType::Float32 | DataType::Float64 => Ok(()),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(()),
        DataType::Dictionary(key, _) if **key == DataType::Int32 => Ok(()),
        other => Err(format!("a field of Arrow type {other} cannot be a column")),
    }
}

/// The array at a dotted path of a batch, and whether each row is present (every level not null).
pub fn at_path(batch: &RecordBatch, path: &[String]) -> Result<(ArrayRef, Vec<bool>), String> {
    let mut array = batch.column_by_name(&path[0]).ok_or_else(|| format!("no column {}", path[0]))?.clone();
    let mut present: Vec<bool> = (0..array.len()).map(|i| array.is_valid(i)).collect();
    for name in &path[1..] {
        let parent = array.as_struct_opt().ok_or_else(|| format!("{name}: its parent is not a record"))?;
        array = parent.column_by_name(name).ok_or_else(|| format!("no field {name}"))?.clone();
        for (i, p) in present.iter_mut().enumerate() {
            *p &= array.is_valid(i);
        }
    }
    Ok((array, present))
}

/// Append an array's values to `out`, nulls as their empty value.
pub fn append(py: Python<'_>, array: &ArrayRef, present: &[bool], out: &mut Option<Data>) -> Result<(), String> {
    let n = array.len();
    macro_rules! numbers {
        ($variant:ident, $values:expr, $convert:expr) => {{
            let values = $values;
            let data = out.get_or_insert_with(|| Data::$variant(Vec::new()));
            let Data::$variant(vec) = data else { return Err("a column changed type".into()) };
            vec.extend((0..n).map(|i| if present[i] { $convert(values[i]) } else { Default::default() }));
        }};
    }
    match array.data_type() {
        DataType::Boolean => {
            let values = array.as_boolean();
            let data = out.get_or_insert_with(|| Data::Bool(Vec::new()));
            let Data::Bool(vec) = data else { return Err("a column changed type".into()) };
            vec.extend((0..n).map(|i| present[i] && values.value(i)));
        }
        DataType::Int32 => numbers!(Long, array.as_primitive::<Int32Type>().values(), i64::from),
        DataType::Int64 => numbers!(Long, array.as_primitive::<Int64Type>().values(), |v: i64| v),
        DataType::Float32 => numbers!(Double, array.as_primitive::<Float32Type>().values(), f64::from),
        DataType::Float64 => numbers!(Double, array.as_primitive::<Float64Type>().values(), |v: f64| v),
        DataType::Dictionary(_, _) => {
            numbers!(Code, array.as_dictionary::<Int32Type>().keys().values(), |v: i32| v)
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let data = out.get_or_insert_with(|| Data::Text(Vec::new()));
            let Data::Text(vec) = data else { return Err("a column changed type".into()) };
            let text = |s: &str| PyString::new(py, s).into_any().unbind();
            match array.data_type() {
                DataType::Utf8 => {
                    let a = array.as_string::<i32>();
                    vec.extend((0..n).map(|i| text(if present[i] { a.value(i) } else { "" })));
                }
                DataType::LargeUtf8 => {
                    let a = array.as_string::<i64>();
                    vec.extend((0..n).map(|i| text(if present[i] { a.value(i) } else { "" })));
                }
                _ => {
                    let a = array.as_string_view();
                    vec.extend((0..n).map(|i| text(if present[i] { a.value(i) } else { "" })));
                }
            }
        }
        other => return Err(format!("a field of Arrow type {other} cannot be a column")),
    }
    Ok(())
}

/// The rows `order` (indices into `data`) as a numpy array.
pub fn to_numpy<'py>(py: Python<'py>, data: Data, order: Option<&[usize]>) -> Bound<'py, PyAny> {
    fn pick<T: Clone>(v: Vec<T>, order: Option<&[usize]>) -> Vec<T> {
        match order {
            None => v,
            Some(order) => order.iter().map(|&i| v[i].clone()).collect(),
        }
    }
    match data {
        Data::Bool(v) => PyArray1::from_vec(py, pick(v, order)).into_any(),
        Data::Long(v) => PyArray1::from_vec(py, pick(v, order)).into_any(),
        Data::Double(v) => PyArray1::from_vec(py, pick(v, order)).into_any(),
        Data::Code(v) => PyArray1::from_vec(py, pick(v, order)).into_any(),
        Data::Text(v) => {
            let v = match order {
                None => v,
                Some(order) => order.iter().map(|&i| v[i].clone_ref(py)).collect(),
            };
            PyArray1::from_vec(py, v).into_any()
        }
    }
}
