"""Who did it: a staff user, a merchant's portal user, an API key, or the system (a command or a task).
Resolved by shape, so that this bottom layer imports none of the apps above it."""
import getpass
import os
from dataclasses import dataclass

from .models import AuditRecord

ActorType = AuditRecord.ActorType


@dataclass(frozen=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""


SYSTEM = Actor(type=ActorType.SYSTEM, id="system", label="system")


def command_actor(name: str) -> Actor:
    """A management command, with the OS user who ran it."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (a container): the uid still says who
        user = f"uid {os.getuid()}"
    return Actor(type=ActorType.SYSTEM, id=f"command:{name}", label=user)


def actor_of(who) -> Actor:
    """An Actor from a user, an ApiKey, an authenticated API caller (merchants.authentication.ApiCaller), an Actor,
    a string (system: "task:name", "command:name") or None (the system)."""
    if who is None:
        return SYSTEM
    if isinstance(who, Actor):
        return who
    if isinstance(who, str):
        return Actor(type=ActorType.SYSTEM, id=who, label=who)
    if hasattr(who, "key_id") and hasattr(who, "merchant"):  # ApiCaller
        return Actor(type=ActorType.API_KEY, id=who.key_id, label=f"{who.kind} key of {who.merchant.pk}")
    if getattr(getattr(who, "_meta", None), "label", "") == "merchants.ApiKey":
        return Actor(type=ActorType.API_KEY, id=who.pk, label=f"{who.redacted} of {who.merchant_id}")
    if getattr(who, "is_authenticated", False):
        kind = ActorType.STAFF if who.is_staff or who.is_superuser else ActorType.MERCHANT_USER
        return Actor(type=kind, id=str(who.pk), label=who.get_username())
    if getattr(who, "is_anonymous", False):
        return Actor(type=ActorType.SYSTEM, id="anonymous", label="anonymous")
    raise TypeError(f"no audit actor for {who!r}")
