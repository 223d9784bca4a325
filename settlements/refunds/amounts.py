"""Minor units of a refund -> base units of the token sent, at the Charge's own rate (what was paid for what amount).

Rounding rule: the refunds of a Charge are counted together. With A the Charge's amount (minor units), B the base
units it brought (its transfer and the dust it carries), R the minor units already refunded (refunds not failed or
canceled) and S their base units, a refund of `a` minor units sends

    floor((R + a) * B / A) - S      base units (never below 0)

so each refund rounds down, the refunds of a Charge together never send more than floor((R + a) * B / A) <= B,
and refunds that add up to the whole Charge send exactly B: the customer gets back every base unit they paid,
overpayment within the Charge included, and never one more."""


def refund_base_units(*, charge_amount: int, charge_base_units: int, refunded: int, refunded_base_units: int,
                      amount: int) -> int:
    if not 0 < amount <= charge_amount - refunded:
        raise ValueError("amount must be positive and at most what is left of the charge")
    total = (refunded + amount) * charge_base_units // charge_amount
    return max(0, total - refunded_base_units)
