"""The hosted checkout page (`/pay/<client_secret>`): what the customer sees, with no login.

The client secret in the URL is the only credential, so the page shows that one intent and nothing else: no
metadata, no merchant e-mail, no API ids. Amounts are formatted from integers (minor units, base units), never
from floats.
"""
import secrets
import xml.etree.ElementTree as ET

import qrcode
import qrcode.constants
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_safe
from eth_utils import to_checksum_address
from qrcode.image.svg import SvgPathImage

from gateway.ratelimit import limit_per_ip
from merchants.selectors import checkout_brand

from .models import PaymentIntent
from .presenters import deposit_addresses, unix
from .pricing import FIAT_EXPONENTS
from .selectors import payment_intent_by_client_secret

Status = PaymentIntent.Status

CURRENCY_SYMBOLS = {"usd": "$"}

# What the customer reads for each status; the page's script holds the same words for live updates.
STATUS_LABELS = {
    Status.REQUIRES_CONFIRMATION: "Not ready yet",
    Status.REQUIRES_ACTION: "Waiting for payment",
    Status.PROCESSING: "Payment seen, waiting for confirmation",
    Status.SUCCEEDED: "Paid",
    "expired": "Expired",
    "canceled": "Canceled",
    "unavailable": "Not taking payments",
}


# --- Formatting: integers in, strings out ------------------------------------------------------------------------

def format_fiat(amount_minor: int, currency: str) -> str:
    """1234 usd -> "$12.34"; 123456 usd -> "$1,234.56". Integer arithmetic only."""
    currency = currency.lower()
    exponent = FIAT_EXPONENTS.get(currency, 2)
    amount = int(amount_minor)
    whole, frac = divmod(abs(amount), 10 ** exponent)
    number = ("-" if amount < 0 else "") + f"{whole:,}" + (f".{frac:0{exponent}d}" if exponent else "")
    symbol = CURRENCY_SYMBOLS.get(currency)
    if symbol:
        return f"-{symbol}{number[1:]}" if amount < 0 else f"{symbol}{number}"
    return f"{number} {currency.upper()}"


def format_base_units(amount_base_units: int, decimals: int) -> str:
    """12340000000000000000 with 18 decimals -> "12.34": exact, trailing zeros trimmed, no grouping (so that it
    can be typed into a wallet as it is). A negative amount (a balance after a reversal) keeps its sign in front."""
    amount = int(amount_base_units)
    whole, frac = divmod(abs(amount), 10 ** decimals)
    frac_digits = f"{frac:0{decimals}d}".rstrip("0") if decimals else ""
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole}.{frac_digits}" if frac_digits else f"{sign}{whole}"


def qr_svg(data: str, *, label: str) -> str:
    """The QR code of `data` as an inline <svg> (one path), sized by CSS through its viewBox."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=3, box_size=10)
    qr.add_data(data)
    qr.make(fit=True)
    element = qr.make_image(image_factory=SvgPathImage).get_image()
    for attribute in ("width", "height", "version"):
        element.attrib.pop(attribute, None)
    element.set("class", "qr-svg")
    element.set("role", "img")
    element.set("aria-label", label)
    element.set("shape-rendering", "crispEdges")
    return ET.tostring(element, encoding="unicode")


# --- Security headers --------------------------------------------------------------------------------------------

def _csp(nonce: str) -> str:
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        f"style-src 'self' 'nonce-{nonce}'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _private(response: HttpResponse) -> HttpResponse:
    """The URL holds a secret: never cache it, never leak it in a Referer, never index it."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _page(request: HttpRequest, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    nonce = secrets.token_urlsafe(18)
    response = render(request, template, {**context, "csp_nonce": nonce}, status=status)
    response["Content-Security-Policy"] = _csp(nonce)
    return _private(response)


# --- The page ----------------------------------------------------------------------------------------------------

def _display_status(intent: PaymentIntent) -> str:
    if intent.status in (Status.REQUIRES_CONFIRMATION, Status.REQUIRES_ACTION) and intent.merchant.is_frozen:
        return "unavailable"  # the shop's account is frozen: no address is shown, nothing should be sent
    if intent.status == Status.CANCELED:
        return "expired" if intent.cancellation_reason == PaymentIntent.CancellationReason.EXPIRED else "canceled"
    return intent.status


def _safe_return_url(url: str) -> str:
    return url if url.lower().startswith(("https://", "http://")) else ""


def _choices(intent: PaymentIntent, *, network_param: str, token_param: str) -> dict | None:
    """The networks and tokens the customer may pay with, and the one chosen (the first of each unless the query
    names another valid one)."""
    if intent.deposit_address_id is None:
        return None
    addresses = deposit_addresses(intent)
    if not addresses:
        return None
    display_names = {o.token.network.api_name: o.token.network.display_name for o in intent.options.all()}
    preferred = [name for name in intent.networks if name in addresses]
    order = preferred + [name for name in addresses if name not in preferred]

    network = network_param if network_param in addresses else order[0]
    tokens = addresses[network]["supported_tokens"]
    by_currency = {t["token_currency"]: t for t in tokens}
    token = by_currency.get(token_param) or tokens[0]

    networks = []
    for name in order:
        currencies = [t["token_currency"] for t in addresses[name]["supported_tokens"]]
        # Switching network keeps the chosen token when the other network has it too.
        keep = token["token_currency"] if token["token_currency"] in currencies else currencies[0]
        networks.append({
            "api_name": name, "display_name": display_names.get(name, name),
            "query": f"?network={name}&token={keep}", "selected": name == network,
        })
    return {
        "networks": networks,
        "tokens": [
            {"currency": t["token_currency"], "symbol": t["token_currency"].upper(),
             "query": f"?network={network}&token={t['token_currency']}",
             "selected": t["token_currency"] == token["token_currency"]}
            for t in tokens
        ],
        "network": {"api_name": network, "display_name": display_names.get(network, network)},
        "token": {
            "symbol": token["token_currency"].upper(),
            "amount": format_base_units(int(token["amount"]), token["decimals"]),
            "payment_uri": token["payment_uri"],
        },
        "address": to_checksum_address(addresses[network]["address"]),
    }


@require_safe
@limit_per_ip("GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP", "checkout", json=False)
def checkout_page(request: HttpRequest, client_secret: str) -> HttpResponse:
    intent = payment_intent_by_client_secret(client_secret)
    if intent is None:
        return _page(request, "checkout/not_found.html", {}, status=404)

    status = _display_status(intent)
    choice = None if status == "unavailable" else _choices(
        intent,
        network_param=request.GET.get("network", "").strip().lower(),
        token_param=request.GET.get("token", "").strip().lower(),
    )
    qr = None
    if choice:
        qr = qr_svg(
            choice["token"]["payment_uri"],
            label=f"QR code: pay {choice['token']['amount']} {choice['token']['symbol']} "
                  f"on {choice['network']['display_name']}",
        )
    now = timezone.now()
    brand = checkout_brand(merchant=intent.merchant)  # templates/checkout/_brand.html
    return _page(request, "checkout/checkout.html", {
        "brand": brand,
        "merchant_name": brand["name"],
        "merchant_initial": brand["initial"],
        "amount_display": format_fiat(intent.amount, intent.currency),
        "livemode": intent.livemode,
        "status": status,
        "status_label": STATUS_LABELS.get(status, status),
        "choice": choice,
        "qr_svg": qr,
        "return_url": _safe_return_url(intent.return_url or brand["website_url"]),
        "checkout_config": {
            "statusUrl": reverse("checkout:status", args=[client_secret]),
            "status": "unavailable" if status == "unavailable" else intent.status,
            "expiresAt": unix(intent.expires_at),
            "now": unix(now),
        },
    })


@require_safe
@limit_per_ip("GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP", "checkout", json=True)
def checkout_status(request: HttpRequest, client_secret: str) -> JsonResponse:
    intent = payment_intent_by_client_secret(client_secret)
    if intent is None:
        response = JsonResponse({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                           "message": "No such payment."}}, status=404)
        return _private(response)
    status = _display_status(intent)
    response = JsonResponse({
        "status": "unavailable" if status == "unavailable" else intent.status,
        "amount_received": intent.amount_received,
        "expires_at": unix(intent.expires_at),
        "now": unix(timezone.now()),
    })
    return _private(response)
