#!/usr/bin/env python3
"""Verifies a DCI envelope's signature with the Python recipe (json.dumps canonical form +
`cryptography`), independently of the Rust code. Used by crates/protocol/tests/golden.rs to prove
that Rust-signed envelopes verify under the reference recipe; also handy for sysadmins.

usage: verify.py --public-key PUBLIC.pem [--now UNIX] [--max-skew SECS] [ENVELOPE.json | -]
exit: 0 valid, 1 invalid (reason on stdout), 2 bad usage or input, 3 `cryptography` missing
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    from cryptography.hazmat.primitives import serialization

    import dci_sig
except ImportError as e:  # pragma: no cover
    print(f"python package `cryptography` is missing ({e}); pip install cryptography", file=sys.stderr)
    sys.exit(3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--now", type=int, default=None)
    ap.add_argument("--max-skew", type=int, default=60)
    ap.add_argument("envelope", nargs="?", default="-")
    a = ap.parse_args()
    try:
        with open(a.public_key, "rb") as f:
            key = serialization.load_pem_public_key(f.read())
        text = sys.stdin.read() if a.envelope == "-" else open(a.envelope, encoding="utf-8").read()
        envelope = json.loads(text)
    except (OSError, ValueError) as e:
        print(f"bad input: {e}", file=sys.stderr)
        return 2
    now = a.now if a.now is not None else int(time.time())
    reason = dci_sig.verify(key, envelope, now, a.max_skew)
    if reason is None:
        print("valid")
        return 0
    print(f"invalid: {reason}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
