import subprocess
import sys


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


def test_production_refuses_to_start_without_the_secrets_kek_or_with_the_seeds_one():
    base = {"SECRET_KEY": "s" * 50, "DATABASE_URL": "postgres://root@127.0.0.1/x",
            "GATEWAY_KEK": "a2FrYWtha2FrYWtha2FrYWtha2FrYWtha2FrYWtha2E=",
            "GATEWAY_PUBLIC_URL": "https://pay.example", "ALLOWED_HOSTS": "pay.example"}
    missing = run_with(base)
    assert missing.returncode != 0 and "GATEWAY_SECRETS_KEK" in missing.stderr
    same = run_with({**base, "GATEWAY_SECRETS_KEK": base["GATEWAY_KEK"]})
    assert same.returncode != 0 and "GATEWAY_SECRETS_KEK must differ from GATEWAY_KEK" in same.stderr
