import json
import subprocess
import sys


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
                       "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"})
    assert result.returncode != 0 and "GATEWAY_KEK" in result.stderr


def test_production_starts_with_its_secrets():
    result = run_with({"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x",
                       "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=",
                       "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"})
    assert result.returncode == 0, result.stderr


PRODUCTION = {"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x",
              "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=",
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
