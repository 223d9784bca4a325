"""The portal's home page (`/portal/`): the figures of payments.home for the mode shown, charts as server-rendered
SVG (no script)."""
from datetime import timedelta

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

from merchants.portal import portal_livemode, portal_merchant, portal_required

from . import home


class PeriodForm(forms.Form):
    days = forms.TypedChoiceField(choices=[(d, f"{d} days") for d in home.PERIODS], coerce=int, required=False,
                                  empty_value=30)


def bar_chart(values: list[int], *, labels: list[str], describe) -> dict:
    """Bars in a 0..100 box, one 10-unit slot per value (the SVG stretches to its container's width)."""
    top = max(values, default=0) or 1
    bars = []
    for i, (value, label) in enumerate(zip(values, labels)):
        height = round(value * 90 / top, 2)
        bars.append({"x": i * 10 + 1, "y": round(100 - height, 2), "height": height, "title": f"{label}: {describe(value)}"})
    return {"bars": bars, "width": len(values) * 10, "max": describe(top if any(values) else 0)}


def period_figures(*, merchant, livemode: bool, days: int) -> dict:
    """The period's figures, kept GATEWAY_PORTAL_HOME_CACHE_SECONDS in the cache per merchant, mode, period and day
    (they are aggregates over up to 90 days: a minute old is fresh enough, and a reload costs nothing)."""
    since = home.period_start(days=days)

    def compute():
        return {
            "since": since,
            "series": home.volume_by_day(merchant=merchant, livemode=livemode, since=since),
            "conversion": home.conversion(merchant=merchant, livemode=livemode, since=since),
            "median_seconds": home.median_seconds_to_pay(merchant=merchant, livemode=livemode, since=since),
        }

    ttl = settings.GATEWAY_PORTAL_HOME_CACHE_SECONDS
    if ttl <= 0:
        return compute()
    key = f"portal-home:{merchant.pk}:{int(livemode)}:{days}:{since.date().isoformat()}"
    return cache.get_or_set(key, compute, ttl)


@portal_required(permission="home.view")
def home_page(request):
    merchant, livemode = portal_merchant(request), portal_livemode(request)
    form = PeriodForm(request.GET or None)
    days = form.cleaned_data["days"] if form.is_bound and form.is_valid() else 30
    figures = period_figures(merchant=merchant, livemode=livemode, days=days)
    since, series = figures["since"], figures["series"]
    day_list = [(since + timedelta(days=i)).date() for i in range(days)]
    labels = [d.isoformat() for d in day_list]
    counts = [sum(s.counts.get(d, 0) for s in series) for d in day_list]
    for one in series:
        one.chart = bar_chart([one.amounts.get(d, 0) for d in day_list], labels=labels,
                              describe=lambda v, one=one: f"{home.amount_display(v, one.decimals)} {one.token.upper()}")
    return render(request, "portal/home.html", {
        "merchant": merchant,
        "form": form,
        "days": days,
        "periods": home.PERIODS,
        "since": since,
        "series": series,
        "count_chart": bar_chart(counts, labels=labels, describe=lambda v: f"{v} payments"),
        "payments_count": sum(counts),
        "conversion": figures["conversion"],
        "median_to_pay": home.duration_display(figures["median_seconds"]),
        "attention": home.attention(merchant=merchant, livemode=livemode),
        "lags": home.lagging_networks(merchant=merchant, livemode=livemode),
    }, status=400 if form.is_bound and not form.is_valid() else 200)
