import io

import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from audit.actors import command_actor
from audit.services import audit_record
from gateway import otp


class Command(BaseCommand):
    help = ("Enrol a staff member's authenticator app for the admin (which needs a TOTP code): prints the otpauth URI "
            "and its QR code once. Refused when the user already has a confirmed device, unless --replace.")

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True)
        parser.add_argument("--name", default="Authenticator app", help="A label for the device.")
        parser.add_argument("--replace", action="store_true",
                            help="Remove the user's devices (a lost phone) and enrol a new one.")
        parser.add_argument("--no-qr", action="store_true", help="Print only the otpauth URI.")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        if not user.is_staff:
            raise CommandError(f"{user.username!r} is not staff; merchants enrol at their first portal login.")
        if otp.totp_device_confirmed(user=user) is not None and not options["replace"]:
            raise CommandError(f"{user.username!r} already has a confirmed device; pass --replace to change it.")
        with transaction.atomic():
            device = otp.totp_device_replace(user=user, name=options["name"])
            audit_record(actor=command_actor("staff_totp_enrol"), action="totp_device.enrol", obj=device,
                         after={"user": user.get_username(), "name": device.name, "replace": options["replace"]})
        self.stdout.write(f"Scan this with {user.username}'s authenticator app (shown once):\n{device.config_url}")
        if not options["no_qr"]:
            qr = qrcode.QRCode(border=1)
            qr.add_data(device.config_url)
            text = io.StringIO()
            qr.print_ascii(out=text, invert=True)
            self.stdout.write(text.getvalue())
