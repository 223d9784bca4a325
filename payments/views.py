"""The hosted checkout page (`/pay/<client_secret>`): what the customer sees, with no login.

The client secret in the URL is the only credential, so the page shows that one intent and nothing else: no
metadata, no merchant e-mail, no API ids. Amounts are formatted from integers (minor units, base units) and exact
fractions, never from floats; the page's script receives them as strings. Words are translated (gateway.locale picks
the customer's language); the script's words come in the page's JSON configuration.
"""
import math
import secrets
import xml.etree.ElementTree as ET
from fractions import Fraction

import qrcode
import qrcode.constants
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe
from qrcode.image.svg import SvgPathImage

from gateway.ratelimit import limit_per_ip
from merchants.selectors import checkout_brand
from wallets.networks import active_networks

from .models import PaymentIntent
from .presenters import unix
from .pricing import FIAT_EXPONENTS, erc20_payment_uri, to_checksum_address
from .selectors import CheckoutFunds, checkout_funds, payment_intent_by_client_secret

Status = PaymentIntent.Status

CURRENCY_SYMBOLS = {"usd": "$"}

# What the customer reads for each status; the page's script gets the same words (`checkout_config.i18n`).
STATUS_LABELS = {
    Status.REQUIRES_CONFIRMATION: gettext_lazy("Not ready yet"),
    Status.REQUIRES_ACTION: gettext_lazy("Waiting for payment"),
    Status.PROCESSING: gettext_lazy("Payment seen, waiting for confirmation"),
    Status.SUCCEEDED: gettext_lazy("Paid"),
    "expired": gettext_lazy("Expired"),
    "canceled": gettext_lazy("Canceled"),
    "unavailable": gettext_lazy("Not taking payments"),
}


def script_words() -> dict:
    """The words of static/checkout/checkout.js, in the request's language."""
    return {
        "status": {str(k): str(v) for k, v in STATUS_LABELS.items()},
        "copied": _("Copied"),
        "copy_failed": _("Copy failed: select the text and copy it by hand"),
        "wallet_connecting": _("Connecting to your wallet…"),
        "wallet_switching": _("Switching your wallet to %(network)s…"),
        "wallet_confirm": _("Confirm the transfer in your wallet…"),
        "wallet_sent": _("Transfer sent. Waiting for the network to include it…"),
        "wallet_rejected": _("The wallet request was declined."),
        "wallet_failed": _("Your wallet could not send the transfer: %(reason)s"),
        "wallet_no_chain": _("Add %(network)s to your wallet, then try again."),
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
        "script-src 'self'",  # static/checkout/checkout.js; no inline script at all
        f"style-src 'self' 'nonce-{nonce}'",
        "img-src 'self' data:",
        "connect-src 'self'",  # the status poll; a browser wallet talks to its own node, outside the page
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


# --- What the customer can pay with ------------------------------------------------------------------------------

def _offered_options(intent: PaymentIntent) -> dict[str, list]:
    """The intent's payment options on the networks offered now (active and watched: wallets.networks.active_networks),
    by network API name: the intent's own order first, tokens by currency."""
    if intent.deposit_address_id is None:
        return {}
    offered = {a.network.id for a in active_networks(livemode=intent.livemode).values()}
    by_network: dict[str, list] = {}
    for option in intent.options.all():  # prefetched in (network, currency) order
        if option.token.network_id in offered:
            by_network.setdefault(option.token.network.api_name, []).append(option)
    preferred = [name for name in intent.networks if name in by_network]
    return {name: by_network[name] for name in preferred + [n for n in by_network if n not in preferred]}


def _remaining_base_units(intent: PaymentIntent, option, seen_minor: Fraction) -> int:
    """What is left to pay, in the option's token: the shortfall (exact, in minor units) in base units, rounded up
    so that the merchant is never short. Nothing received: exactly the option's amount."""
    left = Fraction(intent.amount) - seen_minor
    if left <= 0:
        return 0
    exponent = FIAT_EXPONENTS[intent.currency]
    return min(int(option.amount_base_units), math.ceil(left * 10 ** option.token.decimals / 10 ** exponent))


def _single_token_total(transfers: list):
    """(token, total base units) when every transfer is in the same token, else None."""
    tokens = {t.token_id for t in transfers}
    if len(tokens) != 1:
        return None
    return transfers[0].token, sum(int(t.amount_base_units) for t in transfers)


def _token_text(amount_base_units: int, token) -> str:
    return f"{format_base_units(amount_base_units, token.decimals)} {token.currency.upper()}"


def _funds_text(intent: PaymentIntent, transfers: list, *, less_base_units: dict | None = None,
                less_minor: int = 0) -> str:
    """The amount of `transfers`, exact in their token when they are all in one (minus `less_base_units[token id]`),
    else their worth in the intent's currency (minus `less_minor`, rounded down to the minor unit)."""
    single = _single_token_total(transfers)
    if single is not None and (less_base_units is None or single[0].id in less_base_units):
        token, total = single
        return _token_text(total - (less_base_units or {}).get(token.id, 0), token)
    worth = CheckoutFunds.value_minor(transfers, intent.currency) - less_minor
    return format_fiat(math.floor(worth), intent.currency)


def _choices(intent: PaymentIntent, funds: CheckoutFunds, *, network_param: str, token_param: str) -> dict | None:
    """The networks and tokens the customer may pay with, the one chosen (the first of each unless the query names
    another valid one), and what is left to send in it: the whole amount, or the rest of a partial payment."""
    options = _offered_options(intent)
    if not options:
        return None
    network = network_param if network_param in options else next(iter(options))
    by_currency = {o.token.currency: o for o in options[network]}
    option = by_currency.get(token_param) or options[network][0]
    currency = option.token.currency

    networks = []
    for name, network_options in options.items():
        currencies = [o.token.currency for o in network_options]
        # Switching network keeps the chosen token when the other network has it too.
        keep = currency if currency in currencies else currencies[0]
        networks.append({
            "api_name": name, "display_name": network_options[0].token.network.display_name,
            "query": f"?network={name}&token={keep}", "selected": name == network,
        })
    chain = option.token.network
    address = to_checksum_address(intent.deposit_address.address)
    seen = CheckoutFunds.value_minor(funds.paid, intent.currency)
    remaining = _remaining_base_units(intent, option, seen)
    symbol = currency.upper()
    payment_uri = erc20_payment_uri(token_address=option.token.contract_address, chain_id=chain.chain_id,
                                    recipient=address, amount_base_units=remaining)
    progress = ""
    if funds.paid and remaining:
        if all(t.token_id == option.token_id for t in funds.paid):
            received = _token_text(sum(int(t.amount_base_units) for t in funds.paid), option.token)
            due = _token_text(int(option.amount_base_units), option.token)
        else:  # paid in another token so far: the worth of what came, of the price
            received = format_fiat(math.floor(seen), intent.currency)
            due = format_fiat(intent.amount, intent.currency)
        progress = _("Received %(received)s of %(due)s; send exactly %(remaining)s more.") % {
            "received": received, "due": due, "remaining": _token_text(remaining, option.token)}
    return {
        "networks": networks,
        "tokens": [
            {"currency": o.token.currency, "symbol": o.token.currency.upper(),
             "query": f"?network={network}&token={o.token.currency}", "selected": o.token.currency == currency}
            for o in options[network]
        ],
        "network": {"api_name": network, "display_name": chain.display_name},
        "token": {
            "symbol": symbol,
            "amount": format_base_units(remaining, option.token.decimals),
            "amount_base_units": str(remaining),
            "payment_uri": payment_uri,
        },
        "partial": bool(progress),
        "progress": progress,
        "address": address,
        "wallet": {  # what the browser wallet button sends: EIP-1193 / EIP-3085 fields, amounts as strings
            "chainId": hex(chain.chain_id),
            "chainName": chain.display_name,
            "rpcUrls": [chain.public_rpc_url] if chain.public_rpc_url else [],
            "blockExplorerUrls": [chain.explorer_url] if chain.explorer_url else [],
            "nativeCurrency": {"name": chain.native_currency.upper(), "symbol": chain.native_currency.upper(),
                               "decimals": chain.native_decimals},
            "token": to_checksum_address(option.token.contract_address),
            "to": address,
            "amount": str(remaining),
        },
    }


def _qr(choice: dict) -> str:
    return qr_svg(
        choice["token"]["payment_uri"],
        label=_("QR code: pay %(amount)s %(symbol)s on %(network)s") % {
            "amount": choice["token"]["amount"], "symbol": choice["token"]["symbol"],
            "network": choice["network"]["display_name"]},
    )


def _notice(intent: PaymentIntent, status: str, funds: CheckoutFunds) -> dict | None:
    """What happens to money that does not simply pay the intent: a surplus, or funds after it closed."""
    merchant = intent.merchant.display_name
    seen = CheckoutFunds.value_minor(funds.paid, intent.currency)
    if status in (Status.PROCESSING, Status.SUCCEEDED) and seen > intent.amount:
        dues = {o.token_id: int(o.amount_base_units) for o in intent.options.all()}
        surplus = _funds_text(intent, funds.paid, less_base_units=dues, less_minor=intent.amount)
        return {"kind": "overpaid", "text": _(
            "You sent %(surplus)s more than the amount due. The extra is recorded, and %(merchant)s can refund it "
            "to you.") % {"surplus": surplus, "merchant": merchant}}
    if status in ("expired", "canceled") and funds.late:
        amount = _funds_text(intent, funds.late)
        if status == "expired":
            text = _("We received %(amount)s after this payment expired.") % {"amount": amount}
        else:
            text = _("We received %(amount)s after this payment was canceled.") % {"amount": amount}
        if status == "expired" and intent.merchant.accept_late_payments:
            policy = _("%(merchant)s accepts late payments of the full amount: once confirmed, a payment in full "
                       "completes this order. Otherwise %(merchant)s will contact you to refund it.")
        else:
            policy = _("The funds are recorded and %(merchant)s does not take payments after they close: "
                       "%(merchant)s will contact you to refund them according to its policy.")
        return {"kind": "late", "text": f"{text} {policy % {'merchant': merchant}}"}
    return None


def _receipt(intent: PaymentIntent, funds: CheckoutFunds) -> dict:
    paid_at = max((t.finalized_at or t.seen_at for t in funds.paid), default=intent.updated)
    return {
        "merchant_name": intent.merchant.display_name,
        "amount_display": format_fiat(intent.amount, intent.currency),
        "paid_at": paid_at,
        "transfers": [
            {"amount": _token_text(int(t.amount_base_units), t.token), "network": t.network.display_name,
             "tx_hash": t.tx_hash, "tx_url": t.network.explorer_link("tx", t.tx_hash)}
            for t in funds.paid
        ],
        "return_url": _safe_return_url(intent.return_url or intent.merchant.website_url),
    }


def _receipt_html(intent: PaymentIntent, funds: CheckoutFunds) -> str:
    return render_to_string("checkout/_receipt.html", {"receipt": _receipt(intent, funds)})


# --- The page ----------------------------------------------------------------------------------------------------

def _display_status(intent: PaymentIntent) -> str:
    if intent.status in (Status.REQUIRES_CONFIRMATION, Status.REQUIRES_ACTION) and intent.merchant.is_frozen:
        return "unavailable"  # the shop's account is frozen: no address is shown, nothing should be sent
    if intent.status == Status.CANCELED:
        return "expired" if intent.cancellation_reason == PaymentIntent.CancellationReason.EXPIRED else "canceled"
    return intent.status


def _safe_return_url(url: str) -> str:
    return url if url.lower().startswith(("https://", "http://")) else ""


def _params(request: HttpRequest) -> dict:
    return {"network_param": request.GET.get("network", "").strip().lower(),
            "token_param": request.GET.get("token", "").strip().lower()}


@require_safe
@limit_per_ip("GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP", "checkout", json=False)
def checkout_page(request: HttpRequest, client_secret: str) -> HttpResponse:
    intent = payment_intent_by_client_secret(client_secret)
    if intent is None:
        return _page(request, "checkout/not_found.html", {}, status=404)

    status = _display_status(intent)
    funds = checkout_funds(intent=intent)
    choice = None if status == "unavailable" else _choices(intent, funds, **_params(request))
    now = timezone.now()
    brand = checkout_brand(merchant=intent.merchant)  # templates/checkout/_brand.html
    # The status poll asks about the network and token the page shows (what is left to pay is in that token).
    query = f"?network={choice['network']['api_name']}&token={choice['token']['symbol'].lower()}" if choice else ""
    return _page(request, "checkout/checkout.html", {
        "brand": brand,
        "merchant_name": brand["name"],
        "merchant_initial": brand["initial"],
        "amount_display": format_fiat(intent.amount, intent.currency),
        "livemode": intent.livemode,
        "status": status,
        "status_label": STATUS_LABELS.get(status, status),
        "choice": choice,
        "qr_svg": _qr(choice) if choice else None,
        "notice": _notice(intent, status, funds),
        "receipt": _receipt(intent, funds) if intent.status == Status.SUCCEEDED else None,
        "return_url": _safe_return_url(intent.return_url or brand["website_url"]),
        "checkout_config": {
            "statusUrl": reverse("checkout:status", args=[client_secret]) + query,
            "status": "unavailable" if status == "unavailable" else intent.status,
            "expiresAt": unix(intent.expires_at),
            "now": unix(now),
            "wallet": choice["wallet"] if choice else None,
            "i18n": script_words(),
        },
    })


@require_safe
@limit_per_ip("GATEWAY_RATE_LIMIT_CHECKOUT_PER_IP", "checkout", json=True)
def checkout_status(request: HttpRequest, client_secret: str) -> JsonResponse:
    """What the page's script polls: the status and, for the network and token the page shows (its query), what
    is left to pay (with the QR code of it when that changed from the full amount), a note on a surplus or late
    funds, and the receipt once paid. Words in the customer's language, amounts as exact strings."""
    intent = payment_intent_by_client_secret(client_secret)
    if intent is None:
        response = JsonResponse({"error": {"type": "invalid_request_error", "code": "resource_missing",
                                           "message": "No such payment."}}, status=404)
        return _private(response)
    status = _display_status(intent)
    funds = checkout_funds(intent=intent)
    choice = None if status != Status.REQUIRES_ACTION else _choices(intent, funds, **_params(request))
    pay = None
    if choice:
        pay = {
            "amount": choice["token"]["amount"], "symbol": choice["token"]["symbol"],
            "amount_base_units": choice["token"]["amount_base_units"], "payment_uri": choice["token"]["payment_uri"],
            "progress": choice["progress"], "qr_svg": _qr(choice) if choice["partial"] else None,
        }
    response = JsonResponse({
        "status": "unavailable" if status == "unavailable" else intent.status,
        "amount_received": intent.amount_received,
        "expires_at": unix(intent.expires_at),
        "now": unix(timezone.now()),
        "pay": pay,
        "notice": _notice(intent, status, funds),
        "receipt_html": _receipt_html(intent, funds) if intent.status == Status.SUCCEEDED else None,
    })
    return _private(response)
