#!/usr/bin/env python3
"""Generates crates/protocol/tests/golden/vectors.json: canonical-JSON and signature vectors made
with Python's json.dumps(sort_keys=True, separators=(",", ":")) and `cryptography`, which the
Rust tests (crates/protocol/tests/golden.rs) must reproduce byte for byte.

Run from anywhere:  python3 scripts/golden/generate.py
Keys are generated afresh on every run (they are test keys); commit the result.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

import dci_sig  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "crates", "protocol", "tests", "golden", "vectors.json")
CREATED = 1764400000  # 2025-11-29T07:06:40Z

# Inputs are JSON *text*, so Rust parses exactly what Python parsed.
CANONICAL_INPUTS = {
    "non_ascii_names": '{"name":"Zoë Ñúñez","kanji":"山田太郎","arabic":"محمد","emoji":"😀👨‍👩‍👧","zwj":"a\\u200db"}',
    "floats": '{"a":1e16,"b":0.1,"c":-0.0,"d":1.5e-7,"e":123456.789,"f":1e22,"g":5e-324,'
              '"h":1.7976931348623157e308,"i":100.0,"j":0.0001,"k":0.00001,"l":1e15,"m":2.5E+3,"n":-1.25e-10}',
    "large_ints": '{"max_i64":9223372036854775807,"min_i64":-9223372036854775808,'
                  '"max_u64":18446744073709551615,"zero":0,"neg":-42}',
    "nested": '{"z":{"y":[1,{"b":[],"a":{}},[[]]],"x":null},"A":true,"a":false,"_":[null,"",0]}',
    "escapes": '{"quote":"say \\"hi\\"","backslash":"a\\\\b","controls":"\\n\\r\\t\\b\\f\\u0001\\u001f",'
               '"del":"\\u007f","slash":"a/b","sep":"\\u2028\\u2029","nbsp":"\\u00a0"}',
    "key_order": '{"b":1,"a":2,"B":3,"é":4,"e":5,"😀":6,"｡":7,"aa":8,"a b":9,"":10}',
    "deep_envelope": '{"header":{"version":"1.0.0","message_id":"m-1","message_ts":"2025-01-01T00:00:00+05:30",'
                     '"action":"on-search","status":"succ","total_count":1,"meta":{}},'
                     '"message":{"transaction_id":"t","search_response":[{"reference_id":"r","data":'
                     '{"reg_records":[{"name":{"given_name":"José","surname":"Müller"},"poverty_score":2.5,'
                     '"geo":{"lat":-1.2921,"lon":36.8219},"household_size":7}]}}]}}',
}

# Inputs where serde_json cannot represent what Python parsed; the Rust test pins the documented
# divergence so that a change in either direction is noticed.
KNOWN_DIFFERENCES = [
    {"input": '{"negzero":-0}', "rust": '{"negzero":-0.0}',
     "why": "serde_json parses the integer literal -0 as the float -0.0 (Python: int 0)"},
    {"input": '{"huge":123456789012345678901234567890}', "rust": '{"huge":1.2345678901234568e+29}',
     "why": "integers beyond u64 become f64 without serde_json's arbitrary_precision (Python: exact int)"},
]

ENVELOPES = {
    "search_non_ascii_floats": {
        "header": {"version": "1.0.0", "message_id": "0b3c5d3e-1c1a-4f1e-9f7a-1d2b3c4d5e6f",
                   "message_ts": "2025-11-29T07:06:40Z", "action": "search", "sender_id": "spmis.example",
                   "sender_uri": "https://spmis.example/registry/on-search", "receiver_id": "crvs.example",
                   "total_count": 1, "is_msg_encrypted": False, "meta": {}},
        "message": {"transaction_id": "txn-1", "search_request": [{
            "reference_id": "ref-1", "timestamp": "2025-11-29T07:06:40Z",
            "search_criteria": {"version": "1.0.0", "reg_type": "ns:org:RegistryType:Civil",
                                "query_type": "predicate",
                                "query": [{"seq_num": 1, "expression1": {"attribute_name": "name",
                                           "operator": "eq", "attribute_value": "Zoë 山田 😀"},
                                           "condition": "and", "expression2": {"attribute_name": "score",
                                           "operator": "lt", "attribute_value": 1e16}}],
                                "pagination": {"page_size": 10, "page_number": 1}},
            "locale": "eng"}]},
    },
    "callback_amounts": {
        "header": {"version": "1.0.0", "message_id": "m-2", "message_ts": "2025-11-29T07:06:40+01:00",
                   "action": "on-search", "status": "succ", "total_count": 1, "completed_count": 1,
                   "sender_id": "registry", "receiver_id": "spmis"},
        "message": {"transaction_id": "txn-1", "correlation_id": "corr-1", "search_response": [{
            "reference_id": "ref-1", "timestamp": "2025-11-29T07:06:40Z", "status": "succ",
            "data": {"reg_records": [{"name": "Ñandú", "amount": 0.1, "ratio": -0.0, "big": 9007199254740993,
                                      "tiny": 1.5e-7, "list": [1, 2.0, "3"]}]}}]},
    },
    "error_callback_without_message": {
        "header": {"version": "1.0.0", "message_id": "m-3", "message_ts": "2025-11-29T07:06:40Z",
                   "action": "on-search", "status": "rjct", "status_reason_code": "rjct.action.invalid",
                   "status_reason_message": "bad action — «ошибка»"},
    },
}


def float_sweep():
    """Floats around every repr switch-over (1e-5, 1e16) and power of ten, plus random bit
    patterns, as JSON text: Python's repr and Rust's formatting must agree on all of them."""
    import math
    import random
    import struct

    rng = random.Random(20251129)
    values = []
    for e in range(-12, 24):
        base = 10.0 ** e
        values += [base, math.nextafter(base, 0), math.nextafter(base, math.inf), -base, base * 1.5]
    for _ in range(400):
        bits = rng.getrandbits(64)
        f = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if math.isfinite(f):
            values.append(f)
    for _ in range(200):
        values.append(round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)))
    # repr() round-trips, so this text parses back to exactly these doubles in both languages.
    return "[" + ",".join(repr(v) for v in values) + "]"


# RFC 8785 reference output: ECMAScript JSON.stringify with keys sorted by UTF-16 code units
# (JavaScript's default sort order), computed by Node.js when it is installed.
JCS_JS = r"""
const v = JSON.parse(require("fs").readFileSync(0, "utf8"));
function canon(x) {
  if (Array.isArray(x)) return "[" + x.map(canon).join(",") + "]";
  if (x !== null && typeof x === "object")
    return "{" + Object.keys(x).sort().map(k => JSON.stringify(k) + ":" + canon(x[k])).join(",") + "}";
  return JSON.stringify(x);
}
process.stdout.write(canon(v));
"""


def jcs_by_node(text):
    import shutil
    import subprocess

    if shutil.which("node") is None:
        return None
    out = subprocess.run(["node", "-e", JCS_JS], input=text, capture_output=True, text=True, check=True)
    return out.stdout


def main():
    CANONICAL_INPUTS["float_sweep"] = float_sweep()
    keys = {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "rs256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    canonical = []
    for name, text in CANONICAL_INPUTS.items():
        obj = json.loads(text)
        c = dci_sig.canonical(obj)
        case = {"name": name, "input": text, "canonical": c, "sha256_b64": dci_sig.digest_text(c)}
        jcs = jcs_by_node(text)
        if jcs is not None:
            case["jcs_node"] = jcs
        canonical.append(case)
    known = [dict(k, python=dci_sig.canonical(json.loads(k["input"]))) for k in KNOWN_DIFFERENCES]
    signed = []
    for alg, key in keys.items():
        for name, env in ENVELOPES.items():
            header, message = env["header"], env.get("message")
            sig = dci_sig.sign(key, header, message, "spmis.example", "key-2025", CREATED)
            envelope = dict(env)
            envelope["signature"] = sig
            signed.append({
                "name": f"{name}_{alg}",
                "algorithm": alg,
                "sender_id": "spmis.example",
                "key_id": "key-2025",
                "created": CREATED,
                "digest": dci_sig.digest(header, message),
                "canonical": dci_sig.canonical({"header": header, "message": message}),
                "envelope": envelope,
            })
    doc = {
        "about": "Generated by scripts/golden/generate.py with Python "
                 + sys.version.split()[0]
                 + " json.dumps(sort_keys=True, separators=(',', ':')) and cryptography; do not edit.",
        "keys": {alg: {"private_pkcs8_pem": dci_sig.private_pem(k), "public_spki_pem": dci_sig.public_pem(k)}
                 for alg, k in keys.items()},
        "canonical": canonical,
        "known_differences": known,
        "signed": signed,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    # ensure_ascii=False keeps the fixture readable; the inputs are JSON text anyway.
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}: {len(canonical)} canonical cases, {len(signed)} signed envelopes")


if __name__ == "__main__":
    main()
