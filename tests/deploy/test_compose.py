"""docker-compose.yml: every service hardened, every variable documented (issue 8)."""

from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import DRAIN_TIMEOUT_S, ROOT, SERVICES, require_tool

TRADEWIND_IMAGE_SERVICES = (*SERVICES, "migrate", "fake-exchange", "ctl", "orderpath")
INFRA = ("redis", "postgres", "prometheus", "grafana")


def _seconds(value: str) -> int:
    m = re.fullmatch(r"(\d+)(s|m)", value)
    assert m, value
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def test_all_expected_services_exist(compose):
    assert set(compose["services"]) == set(TRADEWIND_IMAGE_SERVICES) | set(INFRA)


@pytest.mark.parametrize("name", TRADEWIND_IMAGE_SERVICES + INFRA)
def test_every_service_is_hardened(compose, name):
    svc = compose["services"][name]
    assert svc.get("read_only") is True, f"{name}: read_only"
    assert svc.get("cap_drop") == ["ALL"], f"{name}: cap_drop [ALL]"
    assert "no-new-privileges:true" in svc.get("security_opt", []), f"{name}: no-new-privileges"
    limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
    assert limits.get("cpus") and limits.get("memory"), f"{name}: resource limits"
    assert svc.get("pids_limit"), f"{name}: pids_limit"
    assert str(svc.get("user", "")).split(":")[0] not in ("", "0", "root"), f"{name}: non-root user"
    assert svc.get("restart") in ("unless-stopped", "always", "on-failure", "no"), name
    assert svc.get("logging", {}).get("options", {}).get("max-size"), f"{name}: log rotation"
    if name in ("migrate", "ctl"):
        # One-shot: no health check and no restart (db_writer waits for migrate).
        assert svc["restart"] == "no"
        assert svc["healthcheck"] == {"disable": True}
    else:
        assert svc["restart"] == "unless-stopped", name
        test = svc.get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD", f"{name}: healthcheck"


@pytest.mark.parametrize("name", TRADEWIND_IMAGE_SERVICES)
def test_tradewind_services_run_the_one_image_as_uid_10001(compose, name):
    svc = compose["services"][name]
    assert svc["image"].startswith("${TRADEWIND_IMAGE")
    assert svc["user"] == "10001:10001"
    assert any(t.startswith("/tmp:") for t in svc["tmpfs"]), "tmpfs on /tmp"
    assert _seconds(svc["stop_grace_period"]) > DRAIN_TIMEOUT_S
    assert svc.get("init") is True


@pytest.mark.parametrize("name", SERVICES)
def test_five_services_command_health_and_dependencies(compose, name):
    svc = compose["services"][name]
    assert svc["command"] == ["service", name]
    assert "/livez" in " ".join(svc["healthcheck"]["test"])
    deps = svc["depends_on"]
    assert isinstance(deps, dict), "depends_on with conditions"
    assert deps["redis"]["condition"] == "service_healthy"
    env = svc["environment"]
    assert env["TRADEWIND_BUS__KIND"] == "redis"
    assert env["TRADEWIND_BUS__REDIS_URL"] == "redis://redis:6379/0"
    assert env["TRADEWIND_HTTP__HOST"] == "0.0.0.0"
    assert env["TRADEWIND_SERVICE_NAME"] == name


def test_db_writer_waits_for_postgres_and_migrations(compose):
    deps = compose["services"]["db_writer"]["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert compose["services"]["migrate"]["command"] == ["migrate"]


def test_redis_persists_with_aof_and_postgres_gets_schema(compose):
    cmd = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in cmd
    assert any(v.startswith("redis-data:") for v in compose["services"]["redis"]["volumes"])
    pg_volumes = compose["services"]["postgres"]["volumes"]
    assert any(v.startswith("postgres-data:") for v in pg_volumes)
    assert any(
        v.startswith("./src/tradewind/storage/schema.sql:/docker-entrypoint-initdb.d/")
        for v in pg_volumes
    )


def test_monitoring_is_provisioned_from_infrastructure(compose):
    prom = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "./infrastructure/monitoring/prometheus/prometheus.yml:" in prom
    assert "./infrastructure/monitoring/prometheus/rules:" in prom
    graf = " ".join(compose["services"]["grafana"]["volumes"])
    assert "./infrastructure/monitoring/grafana/provisioning:" in graf
    assert "./infrastructure/monitoring/grafana/dashboards:" in graf


def test_offline_profile_adds_only_the_fake_exchange(compose):
    profiled = {n for n, s in compose["services"].items() if s.get("profiles")}
    assert profiled == {"fake-exchange", "ctl", "orderpath"}
    assert compose["services"]["orderpath"]["profiles"] == ["grouped"]
    assert compose["services"]["ctl"]["profiles"] == ["tools"]
    fake = compose["services"]["fake-exchange"]
    assert fake["profiles"] == ["offline"]
    assert fake["command"][:1] == ["fake-exchange"] and "9443" in fake["command"]


def test_secrets_come_from_files_and_never_from_the_environment(compose):
    declared = compose["secrets"]
    assert all("file" in s for s in declared.values())
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        mounted = set(svc.get("secrets", []))
        assert mounted <= set(declared), name
        for key, value in env.items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, key)
                assert value.removeprefix("/run/secrets/") in mounted, (name, key)
            elif re.search(r"PASSWORD|TOKEN|SECRET|API_KEY", key):
                pytest.fail(f"{name}: secret {key} passed as a value; use {key}_FILE")


def _documented_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", text))


def test_every_variable_used_is_in_env_example(compose):
    documented = _documented_names()
    text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    missing = interpolated - documented
    assert not missing, f"interpolated but not in .env.example: {sorted(missing)}"
    assigned = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z][A-Z0-9_]*=", line)
    }
    assert interpolated <= assigned | {"TRADEWIND_FEED__WS_URLS", "TRADEWIND_FEED__REST_URLS"}
    container_env = {k for s in compose["services"].values() for k in (s.get("environment") or {})}
    missing = container_env - documented
    assert not missing, f"container variables not in .env.example: {sorted(missing)}"


def test_env_example_holds_no_secret_values():
    for line in (ROOT / ".env.example").read_text().splitlines():
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            key = line.split("=", 1)[0]
            assert not re.search(r"PASSWORD$|TOKEN$|SECRET$|API_KEY$", key), line


@pytest.mark.parametrize("profile", [None, "offline"])
def test_compose_file_validates(tmp_path, profile):
    tool = require_tool("docker-compose")
    env = tmp_path / "compose.env"
    env.write_text((ROOT / ".env.example").read_text())
    cmd = [tool, "--env-file", str(env), "-f", str(ROOT / "docker-compose.yml")]
    if profile:
        cmd += ["--profile", profile]
    proc = subprocess.run([*cmd, "config", "-q"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_dockerfile_contract():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(froms) >= 2, "multi-stage"
    assert all(f == "${PYTHON_BASE}" for f in froms), froms
    base = re.search(r"^ARG PYTHON_BASE=(\S+)$", text, re.M)
    assert base, "the base is a build argument with a default"
    assert re.fullmatch(
        r"(docker\.io/library/)?python:3\.1[1-9]\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base[1]
    ), base[1]
    assert "--require-hashes" in text and "requirements.lock" in text
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/livez", text, re.M)
    assert 'ENTRYPOINT ["tradewind"]' in text
    assert "org.opencontainers.image.source" in text or "org.opencontainers.image.title" in text
    lock = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([a-z0-9_.-]+)==", lock, re.M)
    assert pins and lock.count("--hash=sha256:") >= len(pins)


def test_execution_names_its_venue(compose):
    env = compose["services"]["execution"]["environment"]
    assert env["TRADEWIND_EXECUTION__VENUE"] == "${TRADEWIND_EXECUTION__VENUE:-paper}"
    ack = "TRADEWIND_EXECUTION__ALLOW_PAPER_WITH_KEYS"
    assert env[ack] == "${" + ack + ":-false}"
    example = (ROOT / ".env.example").read_text()
    assert "\nTRADEWIND_EXECUTION__VENUE=paper\n" in example
    makefile = (ROOT / "Makefile").read_text()
    assert "paper-no-key" in makefile, "make secrets writes the no-key marker the guard knows"


def test_every_service_has_its_own_redis_user_and_the_default_user_is_off(compose):
    """Least privilege on the bus (docs/distributed.md, "Security")."""
    services = compose["services"]
    redis = services["redis"]
    assert "--aclfile" in redis["command"] and redis["secrets"] == ["redis_acl"]
    assert "healthcheck" in redis["healthcheck"]["test"]
    users = {"ctl": "operator", "orderpath": "orderpath", **{s: s for s in SERVICES}}
    for name, user in users.items():
        env = services[name]["environment"]
        assert env["TRADEWIND_BUS__USERNAME"] == f"tradewind-{user}"
        assert env["TRADEWIND_BUS__PASSWORD_FILE"] == f"/run/secrets/redis_{user}_password"
        assert f"redis_{user}_password" in services[name]["secrets"]
    for name in ("risk", "execution", "orderpath"):
        assert services[name]["environment"]["TRADEWIND_CONTROL__ORDER_KEY_FILE"]
        assert "order_key" in services[name]["secrets"]
