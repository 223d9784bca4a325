"""`Stripe-Signature` exactly as Stripe computes it, so `stripe.Webhook.construct_event` verifies our deliveries."""
import hashlib
import hmac


def signature(payload: bytes, secret: str, t: int) -> str:
    """HMAC-SHA256 with the whole `whsec_...` string as the key, over `f"{t}.{payload}"`, in hex."""
    return hmac.new(secret.encode(), str(t).encode() + b"." + payload, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: list[str], t: int) -> str:
    """`t=<t>,v1=<hex>[,v1=<hex>]`: one v1 per secret (two while a secret is being rolled)."""
    return ",".join([f"t={t}", *(f"v1={signature(payload, secret, t)}" for secret in secrets)])
