from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from gateway.admin_site import FactAdmin, ReasonForm, action_with_form, staff_permission
from gateway.ids import id_is_valid

from .corrections import (held_deposit_keep, held_deposit_release, payment_intent_cancel_by_staff,
                          unmatched_deposit_assign)
from .models import (Charge, Event, HeldDeposit, PaymentIntent, PaymentOption, UnmatchedDeposit, WebhookAttempt,
                     WebhookDelivery)
from .services import MERCHANT_CANCELLATION_REASONS
from .webhooks.services import delivery_resend


class CancelForm(ReasonForm):
    cancellation_reason = forms.ChoiceField(choices=[(r, r) for r in MERCHANT_CANCELLATION_REASONS],
                                            initial="abandoned", help_text="What the merchant and the API will see.")


class AssignForm(ReasonForm):
    payment_intent = forms.CharField(max_length=40, help_text="pi_... of the same merchant, waiting for funds")

    def clean_payment_intent(self):
        value = self.cleaned_data["payment_intent"].strip()
        intent = PaymentIntent.objects.filter(pk=value).first() if id_is_valid(value, "pi") else None
        if intent is None:
            raise forms.ValidationError(f"No payment intent {value!r}.")
        return intent


class PaymentOptionInline(admin.TabularInline):
    model = PaymentOption
    extra = 0
    can_delete = False
    readonly_fields = ("token", "amount_base_units")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PaymentIntent)
class PaymentIntentAdmin(FactAdmin):
    """Read-only: every change of state goes through payments.services, never through a form."""

    list_display = ("id", "merchant", "livemode", "status", "amount", "currency", "amount_received", "created")
    list_filter = ("status", "livemode", "currency")
    search_fields = ("id", "merchant__email", "deposit_address__address")
    readonly_fields = [f.name for f in PaymentIntent._meta.fields if f.name != "client_secret"]
    exclude = ("client_secret",)
    inlines = [PaymentOptionInline]
    actions = ["cancel_by_staff"]

    has_cancel_permission = staff_permission("payments.cancel_paymentintent")

    @admin.action(description="Cancel the selected intents (with a reason)", permissions=["cancel"])
    def cancel_by_staff(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=CancelForm, title="Cancel payment intents",
            intro="Only open intents (requires_confirmation, requires_action) can be canceled; the merchant gets "
                  "payment_intent.canceled.",
            run=lambda intent, data: payment_intent_cancel_by_staff(
                intent=intent, actor=request.user, reason=data["reason"],
                cancellation_reason=data["cancellation_reason"], request=request))


@admin.register(Event)
class EventAdmin(FactAdmin):
    list_display = ("id", "type", "object_id", "sequence", "merchant", "livemode", "created")
    list_filter = ("type", "livemode")
    search_fields = ("id", "object_id")
    readonly_fields = [f.name for f in Event._meta.fields]


@admin.register(Charge)
class ChargeAdmin(FactAdmin):
    list_display = ("id", "payment_intent", "merchant", "livemode", "status", "amount", "currency", "created")
    list_filter = ("status", "livemode")
    search_fields = ("id", "payment_intent__id", "transfer__tx_hash")
    readonly_fields = [f.name for f in Charge._meta.fields]


@admin.register(UnmatchedDeposit)
class UnmatchedDepositAdmin(FactAdmin):
    list_display = ("id", "merchant", "livemode", "reason", "payment_intent", "transfer", "created")
    list_filter = ("reason", "livemode")
    search_fields = ("id", "transfer__tx_hash", "transfer__to_address")
    readonly_fields = [f.name for f in UnmatchedDeposit._meta.fields]
    actions = ["assign"]

    has_assign_permission = staff_permission("payments.assign_unmatcheddeposit")

    @admin.action(description="Assign to a payment intent (which it then funds)", permissions=["assign"])
    def assign(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=AssignForm, title="Assign deposits",
            intro="Each deposit then counts among the intent's transfers, by the normal rules (a Charge, processing "
                  "or succeeded, the merchant's events).",
            run=lambda deposit, data: unmatched_deposit_assign(
                deposit=deposit, intent=data["payment_intent"], actor=request.user, reason=data["reason"],
                request=request))


@admin.register(HeldDeposit)
class HeldDepositAdmin(FactAdmin):
    """Deposits from a blocked sender (wallets.BlockedAddress), held for review: not credited, not swept. "Release"
    credits them by the normal rules; "Keep" leaves them frozen on the deposit address (payments.corrections)."""

    list_display = ("id", "status", "merchant", "livemode", "payment_intent", "from_address", "amount", "network",
                    "created", "decided_at", "decided_by")
    list_filter = ("status", "livemode", "transfer__network")
    list_select_related = ("transfer__network", "transfer__token")
    search_fields = ("id", "from_address", "transfer__tx_hash", "transfer__to_address", "payment_intent__id")
    readonly_fields = [f.name for f in HeldDeposit._meta.fields]
    actions = ["release", "keep"]

    has_decide_permission = staff_permission("payments.decide_helddeposit")

    @admin.display(description="amount (base units)")
    def amount(self, obj):
        token = obj.transfer.token.currency if obj.transfer.token_id else "native"
        return f"{obj.transfer.amount_base_units} {token}"

    @admin.display(description="network")
    def network(self, obj):
        return obj.transfer.network.code

    @admin.action(description="Release (credit by the normal rules, with a reason)", permissions=["decide"])
    def release(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=ReasonForm, title="Release held deposits",
            intro="Each deposit then counts among its intent's transfers by the normal rules (a Charge, the ledger, "
                  "sweeps), or becomes an unmatched deposit when it pays no open intent.",
            run=lambda hold, data: held_deposit_release(hold=hold, actor=request.user, reason=data["reason"],
                                                        request=request))

    @admin.action(description="Keep (frozen on the deposit address, with a reason)", permissions=["decide"])
    def keep(self, request, queryset):
        return action_with_form(
            self, request, queryset, form_class=ReasonForm, title="Keep held deposits",
            intro="The funds stay on the deposit address: never credited, never swept (they can be released later).",
            run=lambda hold, data: held_deposit_keep(hold=hold, actor=request.user, reason=data["reason"],
                                                     request=request))


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    ordering = ("-started_at",)
    fields = readonly_fields = ("started_at", "duration_ms", "status_code", "error", "response_body")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(FactAdmin):
    """Read-only, every attempt shown; "Resend" makes the selected deliveries due now (payments.webhooks)."""

    list_display = ("id", "event_id", "event_type", "endpoint", "status", "attempts", "next_attempt_at",
                    "last_attempt_at", "delivered_at", "created")
    list_filter = ("status", "event__type", "event__livemode")
    search_fields = ("event__id", "endpoint__id", "endpoint__url")
    list_select_related = ("event", "endpoint")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    has_resend_permission = staff_permission("payments.resend_webhookdelivery")

    @admin.display(description="event type", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.action(description="Resend the selected deliveries now", permissions=["resend"])
    def resend(self, request, queryset):
        now = timezone.now()
        count = 0
        for delivery in queryset.select_related("event", "endpoint"):
            delivery_resend(endpoint=delivery.endpoint, event=delivery.event, now=now)
            count += 1
        self.message_user(request, f"{count} deliveries will be sent again now.", messages.SUCCESS)
