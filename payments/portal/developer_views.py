"""Portal pages for developers: webhook endpoints (create, edit, disable/enable, test event, roll the secret,
delivery log, resend) and the event log. Writes go through merchants.services and payments.webhooks.services."""
import json

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from gateway.errors import DomainError
from merchants import services as merchant_services

from .. import selectors as payment_selectors
from ..presenters import event_json
from ..webhooks import services as webhook_services
from . import selectors
from .access import found_or_404, portal_page, portal_scope
from .forms import EventFilterForm, WebhookEndpointForm, WebhookSecretRollForm


def _endpoint(request, endpoint_id: str):
    merchant, livemode = portal_scope(request)
    return found_or_404(endpoint_id, "we", lambda pk: selectors.webhook_endpoint_for_portal(
        merchant=merchant, livemode=livemode, endpoint_id=pk))


def _delivery(endpoint, delivery_id: int):
    if delivery_id >= 2 ** 63:  # beyond a bigint: no such row (and no database error)
        raise Http404
    delivery = selectors.webhook_delivery_of(endpoint=endpoint, delivery_id=delivery_id)
    if delivery is None:
        raise Http404
    return delivery


def _secret_page(request, endpoint, *, created: bool):
    return render(request, "portal/developers/webhook_secret.html", {"endpoint": endpoint, "created": created})


@require_safe
@portal_page("webhooks.view")
def webhook_list(request):
    merchant, livemode = portal_scope(request)
    return render(request, "portal/developers/webhook_list.html", {
        "endpoints": selectors.webhook_endpoints_for_portal(merchant=merchant, livemode=livemode),
        "livemode": livemode,
    })


@never_cache  # the answer to a creation shows the signing secret
@require_http_methods(["GET", "POST"])
@portal_page("webhooks.write")
def webhook_create(request):
    merchant, livemode = portal_scope(request)
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None, livemode=livemode)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = merchant_services.webhook_endpoint_create(
                merchant=merchant, livemode=livemode, url=form.cleaned_data["url"],
                enabled_events=form.cleaned_data["enabled_events"], description=form.cleaned_data["description"],
            )
        except DomainError as exc:
            form.add_error("url" if exc.param == "url" else None, exc.message)
        else:
            return _secret_page(request, endpoint, created=True)
    return render(request, "portal/developers/webhook_form.html", {"form": form, "endpoint": None},
                  status=400 if form.is_bound else 200)


@require_safe
@portal_page("webhooks.view")
def webhook_detail(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    after = None
    cursor = request.GET.get("after", "")
    if cursor:
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
            raise Http404("Not a page of this log.")
        after = _delivery(endpoint, int(cursor))
    page = selectors.keyset_page(selectors.webhook_deliveries_of(endpoint=endpoint), after=after)
    return render(request, "portal/developers/webhook_detail.html", {
        "endpoint": endpoint, "page": page, "roll_form": WebhookSecretRollForm(),
    })


@require_http_methods(["GET", "POST"])
@portal_page("webhooks.write")
def webhook_edit(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    _, livemode = portal_scope(request)
    initial = {"url": endpoint.url, "description": endpoint.description, "enabled_events": endpoint.enabled_events}
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None, initial=initial, livemode=livemode)
    if request.method == "POST" and form.is_valid():
        merchant_services.webhook_endpoint_update(
            endpoint=endpoint, url=form.cleaned_data["url"], description=form.cleaned_data["description"],
            enabled_events=form.cleaned_data["enabled_events"],
        )
        messages.success(request, "Endpoint updated.")
        return redirect("portal:webhook-detail", endpoint_id=endpoint.pk)
    return render(request, "portal/developers/webhook_form.html", {"form": form, "endpoint": endpoint},
                  status=400 if form.is_bound else 200)


@require_POST
@portal_page("webhooks.write")
def webhook_toggle(request, endpoint_id: str):
    """Disable (nothing more is delivered) or enable again (the failure clock starts afresh)."""
    endpoint = _endpoint(request, endpoint_id)
    disable = request.POST.get("action") != "enable"
    merchant_services.webhook_endpoint_update(endpoint=endpoint, disabled=disable)
    messages.success(request, "Endpoint disabled." if disable else "Endpoint enabled.")
    return redirect("portal:webhook-detail", endpoint_id=endpoint.pk)


@require_POST
@portal_page("webhooks.write")
def webhook_test(request, endpoint_id: str):
    endpoint = _endpoint(request, endpoint_id)
    try:
        delivery = webhook_services.webhook_test_event_send(endpoint=endpoint, now=timezone.now())
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("portal:webhook-detail", endpoint_id=endpoint.pk)
    messages.success(request, f"Test event {delivery.event_id} queued for delivery.")
    return redirect("portal:webhook-delivery", endpoint_id=endpoint.pk, delivery_id=delivery.pk)


@never_cache  # the answer shows the new secret
@require_http_methods(["GET", "POST"])
@portal_page("webhooks.write")
def webhook_roll(request, endpoint_id: str):
    """GET: the confirmation; POST: a new signing secret, shown once; the old one signs beside it for the grace
    period chosen."""
    endpoint = _endpoint(request, endpoint_id)
    form = WebhookSecretRollForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        endpoint = merchant_services.webhook_endpoint_secret_roll(endpoint=endpoint, grace=form.grace())
        return _secret_page(request, endpoint, created=False)
    return render(request, "portal/developers/webhook_roll.html", {"endpoint": endpoint, "form": form},
                  status=400 if form.is_bound else 200)


@require_safe
@portal_page("webhooks.view")
def webhook_delivery(request, endpoint_id: str, delivery_id: int):
    """One delivery: the request (the event as POSTed) and every attempt's response."""
    endpoint = _endpoint(request, endpoint_id)
    delivery = _delivery(endpoint, delivery_id)
    return render(request, "portal/developers/webhook_delivery.html", {
        "endpoint": endpoint, "delivery": delivery,
        "request_body": json.dumps(event_json(delivery.event), indent=2, ensure_ascii=False),
        "attempts": selectors.webhook_attempts_of(delivery=delivery),
    })


@require_POST
@portal_page("webhooks.write")
def webhook_delivery_resend(request, endpoint_id: str, delivery_id: int):
    endpoint = _endpoint(request, endpoint_id)
    delivery = _delivery(endpoint, delivery_id)
    webhook_services.delivery_resend(endpoint=endpoint, event=delivery.event, now=timezone.now())
    messages.success(request, f"Event {delivery.event_id} will be sent again now.")
    return redirect("portal:webhook-delivery", endpoint_id=endpoint.pk, delivery_id=delivery.pk)


# --- The event log -----------------------------------------------------------------------------------------------

@require_safe
@portal_page("events.view")
def event_list(request):
    merchant, livemode = portal_scope(request)
    form = EventFilterForm(request.GET)
    events = payment_selectors.events_for(merchant=merchant, livemode=livemode)
    page = selectors.filtered_keyset_page(form, events, merchant=merchant, livemode=livemode, match={"type": "type"})
    return render(request, "portal/developers/event_list.html", {
        "form": form, "page": page, "type": form.cleaned_data.get("type", "") if page else "",
        "livemode": livemode,
    }, status=200 if page is not None else 400)


@require_safe
@portal_page("events.view")
def event_detail(request, event_id: str):
    merchant, livemode = portal_scope(request)
    event = found_or_404(event_id, "evt", lambda pk: payment_selectors.event_get(
        merchant=merchant, livemode=livemode, event_id=pk))
    return render(request, "portal/developers/event_detail.html", {
        "event": event, "payload": json.dumps(event_json(event), indent=2, ensure_ascii=False),
        "deliveries": selectors.event_deliveries(event=event),
    })
