import factory

from tests.merchants.factories import MerchantFactory
from wallets import services
from wallets.models import DepositAddress, MasterSeed

# The BIP39 test vector every wallet knows: m/44'/60'/0'/0/0 is 0x9858effd232b4033e47d90003d41ec34ecaeda94.
TEST_MNEMONIC = " ".join(["abandon"] * 11 + ["about"])
TEST_ADDRESS_0 = "0x9858effd232b4033e47d90003d41ec34ecaeda94"


class MasterSeedFactory(factory.django.DjangoModelFactory):
    """The master seed, stored through the real service (encrypted with the test GATEWAY_KEK).
    Returns the existing seed if there is one: there is only ever one."""

    class Meta:
        model = MasterSeed

    mnemonic = TEST_MNEMONIC

    @classmethod
    def _create(cls, model_class, *args, mnemonic, **kwargs):
        existing = MasterSeed.objects.filter(singleton=True).first()
        return existing or services.wallet_import(mnemonic=mnemonic)


class DepositAddressFactory(factory.django.DjangoModelFactory):
    """A deposit address allocated through the real service (creates the test master seed if needed)."""

    class Meta:
        model = DepositAddress

    merchant = factory.SubFactory(MerchantFactory)

    @classmethod
    def _create(cls, model_class, *args, merchant, **kwargs):
        MasterSeedFactory()
        return services.deposit_address_allocate(merchant=merchant)
