//! Canonical JSON: the exact bytes that are digested and signed.
//!
//! Two forms are supported:
//!
//! - [`python_json`]: byte-for-byte what Python writes with
//!   `json.dumps(obj, sort_keys=True, separators=(",", ":"))` — the form the reference
//!   implementation (OpenSPP) and every Python peer digest. `ensure_ascii` is on (Python's
//!   default), so non-ASCII is written as `\uXXXX` with lowercase hex and surrogate pairs, and
//!   floats use Python's `repr` (`1e+16`, `1e-05`, `0.1`, `-0.0`, `100.0`).
//! - [`jcs`]: RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16 code units,
//!   non-ASCII left as UTF-8, numbers in ECMAScript form.
//!
//! # Limits
//!
//! `serde_json::Value` (without `arbitrary_precision`, which this workspace does not enable)
//! holds integers only within `i64`/`u64`; a larger integer in the input is already an `f64`
//! when it reaches this module, so it is written as a float, where Python would keep the
//! integer. Likewise the integer literal `-0` arrives as the float `-0.0` (Python: `0`). DCI
//! payloads carry neither; the golden vectors cover the full `u64` range and pin both cases.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Python `json.dumps(v, sort_keys=True, separators=(",", ":"))`, byte for byte.
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_python(&mut out, v);
    out
}

/// RFC 8785 JSON Canonicalization Scheme.
pub fn jcs(v: &Value) -> String {
    let mut out = String::new();
    write_jcs(&mut out, v);
    out
}

/// [`python_json`] of the object `{"header": header, "message": message}`, without building
/// it (both forms sort `header` before `message`).
pub fn python_json_envelope(header: &Value, message: &Value) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("{\"header\":");
    write_python(&mut out, header);
    out.push_str(",\"message\":");
    write_python(&mut out, message);
    out.push('}');
    out
}

/// [`jcs`] of the object `{"header": header, "message": message}`, without building it.
pub fn jcs_envelope(header: &Value, message: &Value) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("{\"header\":");
    write_jcs(&mut out, header);
    out.push_str(",\"message\":");
    write_jcs(&mut out, message);
    out.push('}');
    out
}

fn write_python(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_python_number(out, n),
        Value::String(s) => write_python_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            // Python sorts `str` keys by code point; Rust's `str` ordering is by UTF-8 bytes,
            // which orders code points identically.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_python_string(out, k);
                out.push(':');
                write_python(out, v);
            }
            out.push('}');
        }
    }
}

fn write_python_string(out: &mut String, s: &str) {
    out.push('"');
    // Runs of printable ASCII other than `"` and `\\` are copied as they are; the scan reads
    // bytes and decodes a character only where one has to be escaped.
    let bytes = s.as_bytes();
    let (mut plain, mut i) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(&s[plain..i]);
        // `i` steps over ASCII a byte and over anything else a character at a time, so it is
        // always on a character boundary.
        let c = s[i..].chars().next().unwrap_or_default();
        i += c.len_utf8();
        plain = i;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            // Python's ESCAPE_ASCII: everything outside ' '..='~' is escaped, DEL included.
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

fn write_python_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_python_float(out, f);
    }
}

/// Shortest round-trip digits of a finite float and the decimal exponent, such that
/// `value = 0.DIGITS × 10^point` (the convention of Python's and ECMAScript's algorithms).
fn shortest_digits(f: f64) -> (bool, String, i32) {
    let negative = f.is_sign_negative();
    // Rust's `{:e}` prints the shortest digits that round-trip, like Python's repr and
    // ECMAScript's Number::toString; only the layout differs.
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (negative, digits, exp + 1)
}

fn write_python_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        // Unreachable with serde_json values; Python would write NaN / Infinity.
        out.push_str(if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
        return;
    }
    let (negative, digits, point) = shortest_digits(f);
    if negative {
        out.push('-');
    }
    if f == 0.0 {
        out.push_str("0.0");
        return;
    }
    // CPython float_repr_style 'short' (format code 'r'): exponent form when
    // point <= -4 or point > 16, otherwise fixed with at least one fractional digit.
    if point <= -4 || point > 16 {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = point - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    } else if point <= 0 {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

fn write_jcs(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_jcs_number(out, n),
        Value::String(s) => write_jcs_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_jcs_object(out, map),
    }
}

fn write_jcs_object(out: &mut String, map: &Map<String, Value>) {
    out.push('{');
    let mut keys: Vec<&String> = map.keys().collect();
    // RFC 8785 §3.2.3: sort by UTF-16 code units, which differs from code-point order above
    // the BMP.
    keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_jcs_string(out, k);
        out.push(':');
        write_jcs(out, &map[k]);
    }
    out.push('}');
}

fn write_jcs_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_jcs_number(out: &mut String, n: &Number) {
    // I-JSON: every number is an IEEE double; integers beyond 2^53 lose precision by design.
    let f = if let Some(i) = n.as_i64() {
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64().unwrap_or(0.0)
    };
    write_ecmascript_number(out, f);
}

/// ECMAScript `Number.prototype.toString()` (ECMA-262 §6.1.6.1.20), as RFC 8785 requires.
fn write_ecmascript_number(out: &mut String, f: f64) {
    if f == 0.0 || !f.is_finite() {
        // -0 serialises as "0"; non-finite numbers cannot occur in a serde_json value.
        out.push('0');
        return;
    }
    let (negative, digits, n) = shortest_digits(f);
    if negative {
        out.push('-');
    }
    let k = digits.len() as i32;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        for _ in 0..(-n) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn py_float(f: f64) -> String {
        python_json(&json!(f))
    }

    #[test]
    fn python_floats_match_repr() {
        for (f, want) in [
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (100.0, "100.0"),
            (1.5, "1.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.234e-7, "1.234e-07"),
            (123456789.125, "123456789.125"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5e100, "-2.5e+100"),
            (9007199254740993.0, "9007199254740992.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (12345678901234567.0, "1.2345678901234568e+16"),
        ] {
            assert_eq!(py_float(f), want, "repr of {f:e}");
        }
    }

    #[test]
    fn python_strings_escape_like_ensure_ascii() {
        let v = json!({"b": "Zoë \u{1F600} \"q\" \\ \n\t\u{7f}\u{1}", "a": [1, -2, true, null]});
        assert_eq!(
            python_json(&v),
            r#"{"a":[1,-2,true,null],"b":"Zo\u00eb \ud83d\ude00 \"q\" \\ \n\t\u007f\u0001"}"#
        );
    }

    #[test]
    fn python_sorts_by_code_point() {
        // U+FF61 sorts before U+1F600 by code point, after it by UTF-16 unit.
        let v = json!({"\u{1F600}": 1, "\u{FF61}": 2, "a": 3, "B": 4});
        assert_eq!(
            python_json(&v),
            r#"{"B":4,"a":3,"\uff61":2,"\ud83d\ude00":1}"#
        );
        assert_eq!(jcs(&v), "{\"B\":4,\"a\":3,\"\u{1F600}\":1,\"\u{FF61}\":2}");
    }

    #[test]
    fn jcs_numbers_follow_ecmascript() {
        // Values from RFC 8785 Appendix B.
        for (f, want) in [
            (0.0, "0"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
            (295147905179352830000.0, "295147905179352830000"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (333333333.3333333, "333333333.3333333"),
            (-1.5, "-1.5"),
            (4.5, "4.5"),
            (2e-3, "0.002"),
            (0.000_012_3, "0.0000123"),
        ] {
            assert_eq!(jcs(&json!(f)), want, "jcs of {f:e}");
        }
        assert_eq!(jcs(&json!(42)), "42");
    }

    #[test]
    fn jcs_rfc_example() {
        let v: Value = serde_json::from_str(
            r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],
               "string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
               "literals":[null,true,false]}"#,
        )
        .unwrap();
        assert_eq!(
            jcs(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }
}
