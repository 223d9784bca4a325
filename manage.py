#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings.local")
    if len(sys.argv) > 1 and sys.argv[1] != "runserver":  # the role in the log lines: the command's name
        from gateway.logs import role_set

        role_set(sys.argv[1])
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
