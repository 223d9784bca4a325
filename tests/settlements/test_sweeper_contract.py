"""contracts/Sweeper.sol on anvil (Prague): deposit EOAs delegated by EIP-7702 are swept by the hot wallet only,
to the hot wallet only; tokens that return no bool are swept; a token that reverts skips its deposit, not the batch."""
import pytest
from eth_account import Account

from wallets import sweeper
from wallets.devchain import rpc

from .sweeper_chain import authorize, balance_of, call_data, deploy, mint, send

ONE = 10**18


@pytest.fixture(scope="module")
def setup(anvil_chain):
    """A Sweeper whose hot wallet is anvil's account 7 (account 0 deploys it: the deployer does not matter)."""
    url, keys = anvil_chain.rpc_url, anvil_chain.private_keys
    hot, hot_key = anvil_chain.accounts[7], keys[7]
    contract = deploy(url, keys[0], "Sweeper.sol", "Sweeper", ["address"], [hot])
    no_bool = deploy(url, keys[0], "SweepTestTokens.sol", "NoBoolToken")
    reverting = deploy(url, keys[0], "SweepTestTokens.sol", "RevertingToken")
    return dict(url=url, hot=hot, hot_key=hot_key, sweeper=contract, no_bool=no_bool, reverting=reverting,
                stranger_key=keys[8], stranger=anvil_chain.accounts[8], minter=keys[0])


def deposits(n):
    return [Account.create() for _ in range(n)]


def sweep_many(s, token, accounts, amounts, *, key=None, to=None, authorize_them=True):
    auths = [authorize(a.key, delegate=s["sweeper"], url=s["url"]) for a in accounts] if authorize_them else None
    data = sweeper.sweep_many_calldata(token=token, deposits=[a.address.lower() for a in accounts], amounts=amounts)
    return send(s["url"], key or s["hot_key"], to=to or s["sweeper"], data=data, authorizations=auths)


def test_the_hot_wallet_sweeps_many_delegated_deposits_in_one_type4_transaction(setup, anvil_chain):
    s, token = setup, anvil_chain.tokens["usdt"]
    accounts = deposits(5)
    for i, a in enumerate(accounts):
        mint(s["url"], s["minter"], token, a.address, (i + 1) * ONE)
    before = balance_of(s["url"], token, s["hot"])

    receipt = sweep_many(s, token, accounts, [(i + 1) * ONE for i in range(5)])

    assert int(receipt["status"], 16) == 1 and int(receipt["type"], 16) == 4
    assert [balance_of(s["url"], token, a.address) for a in accounts] == [0] * 5
    assert balance_of(s["url"], token, s["hot"]) - before == 15 * ONE
    for a in accounts:  # each deposit now runs the sweeper's code
        assert sweeper.delegated_to(rpc(s["url"], "eth_getCode", [a.address, "latest"]), s["sweeper"])
    moved = sweeper.swept_amounts(receipt, token=token, hot_wallet=s["hot"])
    assert moved == {a.address.lower(): (i + 1) * ONE for i, a in enumerate(accounts)}

    # Already delegated: a second sweep needs no authorization.
    mint(s["url"], s["minter"], token, accounts[0].address, ONE)
    receipt = sweep_many(s, token, accounts[:1], [ONE], authorize_them=False)
    assert int(receipt["status"], 16) == 1 and balance_of(s["url"], token, accounts[0].address) == 0


def test_a_stranger_cannot_move_the_tokens_of_a_delegated_address(setup, anvil_chain):
    s, token = setup, anvil_chain.tokens["usdt"]
    [victim] = deposits(1)
    mint(s["url"], s["minter"], token, victim.address, 2 * ONE)
    sweep_many(s, token, [victim], [ONE])  # delegated now, 1 left on it
    assert balance_of(s["url"], token, victim.address) == ONE
    stranger_before = balance_of(s["url"], token, s["stranger"])

    # calling sweep on the delegated address directly
    direct = send(s["url"], s["stranger_key"], to=victim.address,
                  data=call_data("sweep(address,uint256)", ["address", "uint256"], [token, ONE]))
    # calling the batch on the contract, or on the delegated address itself
    batch = sweep_many(s, token, [victim], [ONE], key=s["stranger_key"], authorize_them=False)
    batch_on_victim = sweep_many(s, token, [victim], [ONE], key=s["stranger_key"], to=victim.address,
                                 authorize_them=False)
    # the hot wallet itself calling sweepMany through the delegated address (its inner calls come from the victim)
    hot_via_victim = sweep_many(s, token, [victim], [ONE], to=victim.address, authorize_them=False)
    # a token transfer "from" the delegated address: there is no such function in the delegate
    transfer = send(s["url"], s["stranger_key"], to=victim.address,
                    data=call_data("transfer(address,uint256)", ["address", "uint256"], [s["stranger"], ONE]))

    assert [int(r["status"], 16) for r in (direct, batch, batch_on_victim, hot_via_victim, transfer)] == [0] * 5
    assert balance_of(s["url"], token, victim.address) == ONE
    assert balance_of(s["url"], token, s["stranger"]) == stranger_before


def test_a_token_that_returns_no_bool_is_swept(setup):
    s = setup
    accounts = deposits(3)
    for a in accounts:
        mint(s["url"], s["minter"], s["no_bool"], a.address, 7 * ONE)
    before = balance_of(s["url"], s["no_bool"], s["hot"])

    receipt = sweep_many(s, s["no_bool"], accounts, [7 * ONE] * 3)

    assert int(receipt["status"], 16) == 1
    assert [balance_of(s["url"], s["no_bool"], a.address) for a in accounts] == [0] * 3
    assert balance_of(s["url"], s["no_bool"], s["hot"]) - before == 21 * ONE


def test_a_reverting_token_or_a_missing_delegation_skips_that_deposit_and_sweeps_the_rest(setup, anvil_chain):
    s, usdt = setup, anvil_chain.tokens["usdt"]
    good, short, undelegated = deposits(3)
    mint(s["url"], s["minter"], usdt, good.address, 3 * ONE)
    mint(s["url"], s["minter"], usdt, short.address, ONE)  # asked for 2: the token reverts for it
    mint(s["url"], s["minter"], usdt, undelegated.address, ONE)
    auths = [authorize(a.key, delegate=s["sweeper"], url=s["url"]) for a in (good, short)]
    data = sweeper.sweep_many_calldata(token=usdt, deposits=[a.address.lower() for a in (good, short, undelegated)],
                                       amounts=[3 * ONE, 2 * ONE, ONE])

    receipt = send(s["url"], s["hot_key"], to=s["sweeper"], data=data, authorizations=auths)

    assert int(receipt["status"], 16) == 1
    skipped = {"0x" + log["topics"][1][-40:] for log in receipt["logs"]
               if log["topics"][0] == sweeper.SWEEP_SKIPPED_TOPIC}
    assert skipped == {short.address.lower(), undelegated.address.lower()}
    assert sweeper.swept_amounts(receipt, token=usdt, hot_wallet=s["hot"]) == {good.address.lower(): 3 * ONE}
    assert (balance_of(s["url"], usdt, short.address), balance_of(s["url"], usdt, undelegated.address)) == (ONE, ONE)

    # a token that reverts every transfer: skipped as well
    frozen = deposits(1)[0]
    mint(s["url"], s["minter"], s["reverting"], frozen.address, ONE)
    send(s["url"], s["minter"], to=s["reverting"], data=call_data("freeze(bool)", ["bool"], [True]))
    receipt = sweep_many(s, s["reverting"], [frozen], [ONE])
    assert int(receipt["status"], 16) == 1
    assert [log["topics"][0] for log in receipt["logs"]] == [sweeper.SWEEP_SKIPPED_TOPIC]
    assert balance_of(s["url"], s["reverting"], frozen.address) == ONE
