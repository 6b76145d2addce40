"""The DCI signature recipe of the reference implementation (OpenSPP spp_dci/services/signing.py),
re-stated with the Python standard library and `cryptography`. Used by generate.py and verify.py
to cross-check the Rust implementation byte for byte. Not imported by anything else.
"""

import base64
import hashlib
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa


def canonical(obj):
    """Python's json.dumps with sorted keys and compact separators (ensure_ascii stays on)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def digest_text(text):
    """base64(SHA-256(text as UTF-8)); canonical text is pure ASCII anyway."""
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def digest(header, message):
    return digest_text(canonical({"header": header, "message": message}))


def signing_string(created, expires, dig):
    return f"(created): {created}\n(expires): {expires}\ndigest: {dig}"


def algorithm_of(key):
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rs256"
    raise ValueError(f"unsupported key type {type(key).__name__}")


def sign(private_key, header, message, sender_id, key_id, created, validity=300):
    alg = algorithm_of(private_key)
    expires = created + validity
    data = signing_string(created, expires, digest(header, message)).encode("utf-8")
    if alg == "ed25519":
        raw = private_key.sign(data)
    else:
        raw = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    sig = base64.b64encode(raw).decode("ascii")
    return (
        f'namespace="dci", kidId="{sender_id}|{key_id}|{alg}", algorithm="{alg}", '
        f'created="{created}", expires="{expires}", headers="(created) (expires) digest", '
        f'signature="{sig}"'
    )


_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


def parse(signature):
    s = signature.strip()
    if s.lower().startswith("signature:"):
        s = s[len("signature:"):]
    return {m.group(1): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(s)}


def verify(public_key, envelope, now, max_skew=60):
    """Returns None when valid, else the reason."""
    params = parse(envelope.get("signature") or "")
    for required in ("created", "expires", "signature", "algorithm"):
        if required not in params:
            return f"missing {required}"
    alg = algorithm_of(public_key)
    if params["algorithm"].lower() != alg:
        return f"algorithm {params['algorithm']} but key is {alg}"
    created, expires = int(params["created"]), int(params["expires"])
    if now > expires + max_skew:
        return "expired"
    if created > now + max_skew:
        return "created in the future"
    data = signing_string(created, expires, digest(envelope["header"], envelope.get("message"))).encode("utf-8")
    raw = base64.b64decode(params["signature"])
    try:
        if alg == "ed25519":
            public_key.verify(raw, data)
        else:
            public_key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return "signature does not verify"
    return None


def private_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def public_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
