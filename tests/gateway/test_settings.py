import json
import subprocess
import sys
from pathlib import Path


SECRETS_KEK = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0czM="


def run_with(env: dict) -> subprocess.CompletedProcess:
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='gateway.settings.production'; django.setup()"
    return subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_its_secrets():
    result = run_with({})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_a_weak_kek():
    result = run_with({"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x", "GATEWAY_KEK": "short",
                       "GATEWAY_SECRETS_KEK": SECRETS_KEK,
                       "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"})
    assert result.returncode != 0 and "GATEWAY_KEK" in result.stderr


def test_production_starts_with_its_secrets():
    result = run_with({"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x",
                       "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=",
                       "GATEWAY_SECRETS_KEK": SECRETS_KEK,
                       "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"})
    assert result.returncode == 0, result.stderr


ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {"SECRET_KEY": "x7Qp2vR9sT4uW6yZ8aB1cD3eF5gH7jK9mN2pQ4rS6tV8wX0yZ2",
                  "DATABASE_URL": "postgres://root@127.0.0.1/x",
                  "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=", "GATEWAY_SECRETS_KEK": SECRETS_KEK,
                  "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"}


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args],
                          env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "gateway.settings.production", **env},
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_production_passes_djangos_deployment_checks():
    result = manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_is_https_only_behind_the_documented_proxy_header():
    code = ("from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
            "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, "
            "s.REST_FRAMEWORK['NUM_PROXIES'])")
    shown = manage(PRODUCTION_ENV, "shell", "--no-imports", "-c", code)
    expected = "True 31536000 True True ('HTTP_X_FORWARDED_PROTO', 'https') 1"
    assert shown.stdout.strip().splitlines()[-1] == expected, shown.stderr
    direct = manage({**PRODUCTION_ENV, "SECURE_PROXY_SSL_HEADER": ""}, "shell", "--no-imports", "-c", code)
    assert direct.stdout.strip().splitlines()[-1] == "True 31536000 True True None 0", direct.stderr
    bad = manage({**PRODUCTION_ENV, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "check")
    assert bad.returncode != 0 and "SECURE_PROXY_SSL_HEADER must read Header-Name=value" in bad.stderr


PRODUCTION = {"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x",
              "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=", "GATEWAY_SECRETS_KEK": SECRETS_KEK,
              "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"}


def database_settings(env: dict) -> dict:
    code = ("import django, json, os; os.environ['DJANGO_SETTINGS_MODULE']='gateway.settings.production'; "
            "django.setup(); from django.conf import settings; print(json.dumps(settings.DATABASES['default']))")
    result = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin", **PRODUCTION, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_keeps_one_persistent_connection_per_thread_by_default():
    db = database_settings({})
    assert db["CONN_MAX_AGE"] == 600 and db["CONN_HEALTH_CHECKS"] is True and "pool" not in db["OPTIONS"]
    assert db["OPTIONS"]["server_side_binding"] is True and db["OPTIONS"]["prepare_threshold"] == 5


def test_production_uses_a_bounded_pool_when_asked_and_keeps_prepared_statements():
    db = database_settings({"DATABASE_POOL_MAX_SIZE": "3"})
    assert db["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert db["OPTIONS"]["pool"]["max_size"] == 3 and db["OPTIONS"]["pool"]["min_size"] == 1
    assert db["OPTIONS"]["server_side_binding"] is True and db["OPTIONS"]["prepare_threshold"] == 5


def test_production_refuses_to_start_without_the_secrets_kek_or_with_the_seeds_one():
    base = {"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x",
            "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=",
            "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"}
    missing = run_with(base)
    assert missing.returncode != 0 and "GATEWAY_SECRETS_KEK" in missing.stderr
    same = run_with({**base, "GATEWAY_SECRETS_KEK": base["GATEWAY_KEK"]})
    assert same.returncode != 0 and "GATEWAY_SECRETS_KEK must differ from GATEWAY_KEK" in same.stderr
