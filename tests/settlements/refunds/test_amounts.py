"""The rounding rule of refunds (settlements/refunds/amounts.py): each refund rounds down at the Charge's own rate,
the refunds of a Charge never send more base units than it brought, and refunds adding up to the whole Charge send
exactly what it brought."""
from hypothesis import given, settings, strategies as st

from settlements.refunds.amounts import refund_base_units


@settings(max_examples=2000, deadline=None)
@given(charge_amount=st.integers(1, 10**8), rate=st.integers(1, 10**16), extra=st.integers(0, 10**16),
       cuts=st.lists(st.integers(1, 10**8), min_size=1, max_size=12), data=st.data())
def test_refunds_never_send_more_than_received_and_all_of_it_when_whole(charge_amount, rate, extra, cuts, data):
    received = charge_amount * rate + extra  # what the customer paid for `charge_amount` minor units
    refunded = sent = 0
    for cut in cuts:
        left = charge_amount - refunded
        if left == 0:
            break
        amount = min(cut, left)
        part = refund_base_units(charge_amount=charge_amount, charge_base_units=received, refunded=refunded,
                                 refunded_base_units=sent, amount=amount)
        assert 0 <= part <= -(-amount * received // charge_amount)  # at most the ceiling of the pro-rata share
        refunded, sent = refunded + amount, sent + part
        assert sent <= received
        assert sent == refunded * received // charge_amount  # rounded down, counted together
    if refunded < charge_amount:  # the rest, in one refund
        sent += refund_base_units(charge_amount=charge_amount, charge_base_units=received, refunded=refunded,
                                  refunded_base_units=sent, amount=charge_amount - refunded)
    assert sent == received


def test_a_cent_of_a_ten_dollar_charge_of_ten_tokens_with_eighteen_decimals():
    assert refund_base_units(charge_amount=1000, charge_base_units=10 * 10**18, refunded=0, refunded_base_units=0,
                             amount=1) == 10**16
    # 3 cents of $10 paid with 10 USDT + 1 base unit: the odd base unit goes with the last refund, never before
    assert refund_base_units(charge_amount=1000, charge_base_units=10 * 10**18 + 1, refunded=0,
                             refunded_base_units=0, amount=3) == 3 * 10**16
