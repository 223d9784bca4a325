"""`manage.py staff_roles sync|show` and `manage.py staff_roles assign --username U --role R [--remove]`."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record
from gateway.roles import ROLES, roles_sync


class Command(BaseCommand):
    help = "Staff roles (support, finance, security): sync their exact permissions, show them, assign a user."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["sync", "show", "assign"])
        parser.add_argument("--username")
        parser.add_argument("--role", choices=sorted(ROLES))
        parser.add_argument("--remove", action="store_true", help="take the role away instead")

    def handle(self, *args, action, **options):
        if action == "show":
            for role, names in ROLES.items():
                self.stdout.write(f"{role}: {', '.join(sorted(names))}")
            return
        with transaction.atomic():
            if action == "sync":
                counts = roles_sync()
                audit_record(actor=command_actor("staff_roles sync"), action="staff_roles.sync", after=counts)
                self.stdout.write(", ".join(f"{role}: {n} permissions" for role, n in counts.items()))
                return
            if not options["username"] or not options["role"]:
                raise CommandError("assign needs --username and --role")
            user = get_user_model().objects.filter(username=options["username"]).first()
            if user is None:
                raise CommandError(f"No user named {options['username']!r}.")
            if not user.is_staff:
                raise CommandError(f"{user.username!r} is not staff.")
            group = Group.objects.filter(name=options["role"]).first()
            if group is None:  # a database whose groups were removed: seed them again
                roles_sync()
                group = Group.objects.get(name=options["role"])
            before = sorted(user.groups.values_list("name", flat=True))
            (user.groups.remove if options["remove"] else user.groups.add)(group)
            audit_record(actor=command_actor("staff_roles assign"), action="staff_roles.assign", obj=user,
                         before={"roles": before}, after={"roles": sorted(user.groups.values_list("name", flat=True))})
        self.stdout.write(f"{user.username}: {', '.join(sorted(user.groups.values_list('name', flat=True))) or '-'}")
