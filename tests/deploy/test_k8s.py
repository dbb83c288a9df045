"""Kubernetes renders (both overlays): Pod Security Standard restricted, the
issue-9 list on every pod, scaling objects, and NetworkPolicy flows: every
needed path exists and nothing else does."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from typing import Any

import pytest
import yaml

from .conftest import DRAIN_TIMEOUT_S, K8S_NAMES, ROOT, require_tool

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
OVERLAYS = ("dev", "prod")


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in WORKLOADS]


def pod_spec(w: dict[str, Any]) -> dict[str, Any]:
    return w["spec"]["template"]["spec"]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _all_pods(renders):
    return [(o, w) for o in OVERLAYS for w in workloads(renders[o])]


def _ids(renders_pairs):
    return [f"{o}-{w['kind']}-{w['metadata']['name']}" for o, w in renders_pairs]


@pytest.fixture(scope="module")
def pods(renders):
    return _all_pods(renders)


def test_renders_hold_everything_and_no_secret(renders):
    for overlay in OVERLAYS:
        docs = renders[overlay]
        kinds = {d["kind"] for d in docs}
        assert {
            "Namespace",
            "ConfigMap",
            "StatefulSet",
            "Deployment",
            "Service",
            "ServiceAccount",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
        } <= kinds
        assert "Secret" not in kinds, "Secrets are created out of band, never rendered"
        assert set(by_kind(docs, "StatefulSet")) == {"redis", "postgres", "prometheus"}
        deployments = set(by_kind(docs, "Deployment"))
        assert set(K8S_NAMES.values()) | {"grafana"} <= deployments
        assert ("fake-exchange" in deployments) == (overlay == "dev")
        for d in docs:
            if d["kind"] != "Namespace":
                assert d["metadata"].get("namespace") == "tradewind", d["metadata"]["name"]
        ns = by_kind(docs, "Namespace")["tradewind"]
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_pod_security_standard_restricted(pods):
    problems = restricted_problems(pods)
    assert not problems, "\n".join(problems)


def restricted_problems(pods: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What breaks the Pod Security Standard restricted (and the resources rule), per pod."""
    problems = []
    for overlay, w in pods:
        name = f"{overlay}/{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        psc = spec.get("securityContext", {})
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                problems.append(f"{name}: {key}")
        for v in spec.get("volumes", []):
            kinds = set(v) - {"name"}
            if not kinds <= ALLOWED_VOLUMES:
                problems.append(f"{name}: volume type {kinds}")
        if psc.get("seccompProfile", {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: pod seccompProfile")
        if psc.get("sysctls"):
            problems.append(f"{name}: sysctls")
        for c in spec.get("initContainers", []) + spec["containers"]:
            cname = f"{name}/{c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("privileged"):
                problems.append(f"{cname}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cname}: allowPrivilegeEscalation")
            caps = sc.get("capabilities", {})
            if caps.get("drop") != ["ALL"]:
                problems.append(f"{cname}: capabilities.drop [ALL]")
            if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
                problems.append(f"{cname}: capabilities.add")
            non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            if non_root is not True:
                problems.append(f"{cname}: runAsNonRoot")
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            if not isinstance(uid, int) or uid == 0:
                problems.append(f"{cname}: fixed non-zero runAsUser")
            seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{cname}: seccompProfile")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cname}: readOnlyRootFilesystem")
            if sc.get("procMount", "Default") != "Default":
                problems.append(f"{cname}: procMount")
            for p in c.get("ports", []):
                if p.get("hostPort"):
                    problems.append(f"{cname}: hostPort")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problems.append(f"{cname}: {kind}.{r}")
    return problems


def test_issue9_list_on_every_pod(renders, pods):
    problems = []
    for overlay, w in pods:
        name = f"{overlay}/{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        for c in spec["containers"]:
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe not in c:
                    problems.append(f"{name}/{c['name']}: {probe}")
        sa = spec.get("serviceAccountName")
        if not sa or sa == "default":
            problems.append(f"{name}: own ServiceAccount")
        elif sa not in by_kind(renders[overlay], "ServiceAccount"):
            problems.append(f"{name}: ServiceAccount {sa} not rendered")
        else:
            if (
                by_kind(renders[overlay], "ServiceAccount")[sa].get("automountServiceAccountToken")
                is not False
            ):
                problems.append(f"{name}: ServiceAccount automounts its token")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: automountServiceAccountToken false")
        strategy = w["spec"].get("strategy" if w["kind"] == "Deployment" else "updateStrategy", {})
        if strategy.get("type") != "RollingUpdate":
            problems.append(f"{name}: rolling update strategy")
        if not w["spec"].get("revisionHistoryLimit", 0) >= 2:
            problems.append(f"{name}: revisionHistoryLimit")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= DRAIN_TIMEOUT_S:
            problems.append(f"{name}: terminationGracePeriodSeconds {grace} <= drain")
    # A ServiceAccount per workload: no two workloads share one.
    for overlay in OVERLAYS:
        sas = [pod_spec(w)["serviceAccountName"] for w in workloads(renders[overlay])]
        assert len(sas) == len(set(sas)), f"{overlay}: shared ServiceAccounts {sas}"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tradewind_services(renders, overlay):
    deployments = by_kind(renders[overlay], "Deployment")
    config = next(
        d
        for d in renders[overlay]
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("tradewind-config")
    )["data"]
    assert config["TRADEWIND_BUS__KIND"] == "redis"
    assert config["TRADEWIND_HTTP__HOST"] == "0.0.0.0"
    assert float(config["TRADEWIND_DRAIN_TIMEOUT_S"]) <= DRAIN_TIMEOUT_S
    for service, k8s_name in K8S_NAMES.items():
        spec = pod_spec(deployments[k8s_name])
        c = spec["containers"][0]
        assert c["args"] == ["service", service]
        assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert c["startupProbe"]["httpGet"]["path"] == "/livez"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert (
            deployments[k8s_name]["spec"]["template"]["metadata"]["labels"]["tradewind.io/service"]
            == service
        )
        image = c["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        assert not any(k.endswith(("PASSWORD", "TOKEN", "SECRET", "API_KEY")) for k in env)
        for k, v in env.items():
            if k.endswith("_FILE"):
                assert v.startswith("/run/secrets/")
    init = pod_spec(deployments["db-writer"])["initContainers"]
    assert [c["args"] for c in init] == [["migrate"]]


def test_configmaps_carry_schema_prometheus_and_dashboards(renders):
    for overlay in OVERLAYS:
        cms = {
            d["metadata"]["name"].rsplit("-", 1)[0]: d
            for d in renders[overlay]
            if d["kind"] == "ConfigMap"
        }
        assert "001-schema.sql" in cms["tradewind-postgres-init"]["data"]
        assert "prometheus.yml" in cms["tradewind-prometheus-config"]["data"]
        assert "tradewind-alerts.yml" in cms["tradewind-prometheus-rules"]["data"]
        assert len(cms["tradewind-grafana-dashboards"]["data"]) == 5
        datasource = cms["tradewind-grafana-datasources"]["data"]["prometheus.yml"]
        assert "tradewind-prometheus" in datasource


def test_scaling_objects(renders):
    for overlay in OVERLAYS:
        docs = renders[overlay]
        hpas = by_kind(docs, "HorizontalPodAutoscaler")
        assert set(hpas) == {"signal", "execution", "db-writer"}
        deployments = by_kind(docs, "Deployment")
        for name, h in hpas.items():
            assert h["apiVersion"] == "autoscaling/v2"
            assert h["spec"]["behavior"]["scaleUp"] and h["spec"]["behavior"]["scaleDown"]
            assert h["spec"]["scaleTargetRef"]["name"] in deployments
            assert "replicas" not in deployments[name]["spec"], "HPA owns replicas"
            if overlay == "dev":
                assert h["spec"]["minReplicas"] <= 1
            else:
                assert h["spec"]["minReplicas"] >= 2
        # A budget only where more than one replica runs (a budget on one replica
        # protects nothing or blocks every drain), and then it keeps one.
        pdbs = by_kind(docs, "PodDisruptionBudget")
        for name, pdb in pdbs.items():
            d = deployments[name]
            least = d["spec"].get("replicas") or hpas[name]["spec"]["minReplicas"]
            assert least > 1, f"{overlay}: PDB {name} on a single replica"
            assert pdb["spec"] == {
                "minAvailable": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            }
        multi = {
            n
            for n, d in deployments.items()
            if (d["spec"].get("replicas") or hpas.get(n, {}).get("spec", {}).get("minReplicas", 1))
            > 1
        }
        assert set(pdbs) == multi
        # ws (a lease per shard) and risk (lease) never autoscale; prod runs a
        # hot standby of each, so their PDBs keep one pod through a drain.
        standby = 1 if overlay == "dev" else 2
        assert deployments["ws"]["spec"]["replicas"] == standby
        assert deployments["risk"]["spec"]["replicas"] == standby
    prod = by_kind(renders["prod"], "Deployment")
    for name in K8S_NAMES.values():
        assert pod_spec(prod[name])["affinity"]["podAntiAffinity"]


def _storage(docs, sts):
    return by_kind(docs, "StatefulSet")[sts]["spec"]["volumeClaimTemplates"][0]["spec"][
        "resources"
    ]["requests"]["storage"]


def test_prod_has_larger_volumes_and_pinned_images(renders):
    def gi(s):
        return int(s.removesuffix("Gi"))

    for sts in ("redis", "postgres", "prometheus"):
        assert gi(_storage(renders["prod"], sts)) > gi(_storage(renders["dev"], sts))
    for w in workloads(renders["prod"]):
        for c in pod_spec(w)["containers"] + pod_spec(w).get("initContainers", []):
            assert c["imagePullPolicy"] == "Always"
            tag = c["image"].rsplit(":", 1)
            assert len(tag) == 2 and tag[1] not in ("latest", "dev"), c["image"]


# --- NetworkPolicy flows ------------------------------------------------------------

KUBE_DNS = {
    "name": "kube-dns",
    "ns": "kube-system",
    "ns_labels": {"kubernetes.io/metadata.name": "kube-system"},
    "labels": {"k8s-app": "kube-dns"},
    "ports": [("UDP", 53, None), ("TCP", 53, None)],
}
EXTERNAL = {"internet": "203.0.113.10", "apiserver": "10.96.0.1"}
EXTERNAL_PORTS = [("TCP", 443), ("TCP", 6443), ("TCP", 80), ("TCP", 5432), ("TCP", 6379)]


def _match_labels(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for k, v in selector.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions", []):
        val = labels.get(e["key"])
        op = e["operator"]
        if op == "In" and val not in e["values"]:
            return False
        if op == "NotIn" and val in e["values"]:
            return False
        if op == "Exists" and e["key"] not in labels:
            return False
        if op == "DoesNotExist" and e["key"] in labels:
            return False
    return True


def _peer_matches(peer, target, policy_ns="tradewind") -> bool:
    if "ipBlock" in peer:
        if target.get("ip") is None:
            return False
        ip = ipaddress.ip_address(target["ip"])
        block = peer["ipBlock"]
        if ip not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(ip in ipaddress.ip_network(x) for x in block.get("except", []))
    if target.get("ip") is not None:
        return False
    if "namespaceSelector" in peer:
        if not _match_labels(peer["namespaceSelector"], target["ns_labels"]):
            return False
    elif target["ns"] != policy_ns:
        return False
    if "podSelector" in peer:
        return _match_labels(peer["podSelector"], target["labels"])
    return True


def _port_matches(rule_ports, proto, port, port_name) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != proto:
            continue
        if "port" not in p or p["port"] == port or (port_name and p["port"] == port_name):
            return True
    return False


def _allowed(policies, pod, direction, peer, proto, port, port_name) -> bool:
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    selecting = [
        p
        for p in policies
        if direction in p["spec"].get("policyTypes", ["Ingress"])
        and (not p["spec"]["podSelector"] or _match_labels(p["spec"]["podSelector"], pod["labels"]))
    ]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get(key, []):
            peers = rule.get(peers_key)
            if peers is not None and not any(_peer_matches(x, peer) for x in peers):
                continue
            if _port_matches(rule.get("ports"), proto, port, port_name):
                return True
    return False


def flows(docs) -> set[tuple[str, str, str, int]]:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = []
    for w in workloads(docs):
        spec = pod_spec(w)
        ports = [
            (p.get("protocol", "TCP"), p["containerPort"], p.get("name"))
            for c in spec["containers"]
            for p in c.get("ports", [])
        ]
        pods.append(
            {
                "name": w["metadata"]["name"],
                "ns": "tradewind",
                "ns_labels": {"kubernetes.io/metadata.name": "tradewind"},
                "labels": w["spec"]["template"]["metadata"]["labels"],
                "ports": ports,
            }
        )
    out = set()
    for src in pods:
        for dst in [*pods, KUBE_DNS]:
            if dst is src:
                continue
            for proto, port, port_name in dst["ports"]:
                if not _allowed(policies, src, "Egress", dst, proto, port, port_name):
                    continue
                if dst["ns"] == "tradewind" and not _allowed(
                    policies, dst, "Ingress", src, proto, port, port_name
                ):
                    continue
                out.add((src["name"], dst["name"], proto, port))
        for ext, ip in EXTERNAL.items():
            for proto, port in EXTERNAL_PORTS:
                if _allowed(policies, src, "Egress", {"ip": ip}, proto, port, None):
                    out.add((src["name"], ext, proto, port))
    return out


SERVICES_K8S = list(K8S_NAMES.values())


def expected_flows(overlay: str) -> set[tuple[str, str, str, int]]:
    exp = set()
    for s in SERVICES_K8S:
        exp.add((s, "redis", "TCP", 6379))
        exp.add(("prometheus", s, "TCP", 8080))
    exp.add(("db-writer", "postgres", "TCP", 5432))
    exp.add(("grafana", "prometheus", "TCP", 9090))
    for s in ("ws", "execution"):
        exp.add((s, "internet", "TCP", 443))
    # Kubernetes API for service discovery (address not known in advance).
    for target in ("apiserver", "internet"):
        for port in (443, 6443):
            exp.add(("prometheus", target, "TCP", port))
    for s in [*SERVICES_K8S, "prometheus", "grafana"]:
        exp.add((s, "kube-dns", "UDP", 53))
        exp.add((s, "kube-dns", "TCP", 53))
    if overlay == "dev":
        for s in ("ws", "execution"):
            exp.add((s, "fake-exchange", "TCP", 9443))
    return exp


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_needed_flows(renders, overlay):
    got = flows(renders[overlay])
    exp = expected_flows(overlay)
    assert not exp - got, f"needed flows blocked: {sorted(exp - got)}"
    assert not got - exp, f"flows allowed that nothing needs: {sorted(got - exp)}"


def test_default_deny_covers_every_pod(renders):
    for overlay in OVERLAYS:
        deny = by_kind(renders[overlay], "NetworkPolicy")["default-deny-all"]
        assert deny["spec"]["podSelector"] == {}
        assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


# --- scripts -----------------------------------------------------------------------


def test_deploy_dry_run_prints_the_plan_without_a_cluster(tmp_path):
    require_tool("kubectl")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    proc = subprocess.run(
        [
            "bash",
            str(ROOT / "k8s" / "deploy-k8s.sh"),
            "--overlay",
            "prod",
            "--registry",
            "registry.example.com/acme",
            "--tag",
            "9.9.9",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dry run" in out
    assert "registry.example.com/acme/tradewind:9.9.9" in out
    for secret in (
        "tradewind-postgres",
        "tradewind-control",
        "tradewind-exchange",
        "tradewind-grafana",
    ):
        assert secret in out
    assert "Deployment/risk" in out and "StatefulSet/postgres" in out
    assert not list((ROOT / "k8s").glob(".render.*")), "temporary render dir left behind"


def test_cleanup_dry_run_keeps_data_unless_asked():
    proc = subprocess.run(
        ["bash", str(ROOT / "k8s" / "cleanup-k8s.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "PersistentVolumeClaims kept" in proc.stdout
    assert "the namespace kept" in proc.stdout


def test_shell_scripts_pass_shellcheck():
    tool = require_tool("shellcheck")
    scripts = [
        ROOT / "k8s" / "deploy-k8s.sh",
        ROOT / "k8s" / "cleanup-k8s.sh",
        ROOT / "k8s" / "base" / "sync-files.sh",
        ROOT / "scripts" / "kind-e2e.sh",
        ROOT / ".ci" / "deploy_checks.sh",
        ROOT / ".ci" / "install_deploy_tools.sh",
    ]
    proc = subprocess.run([tool, *map(str, scripts)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


def _need_tree_sitter() -> None:
    try:
        import tree_sitter_powershell  # noqa: F401
    except ImportError:
        reason = "tree-sitter-powershell is not installed (bash .ci/install_deploy_tools.sh)"
        if os.environ.get("TRADEWIND_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def test_powershell_scripts_parse():
    _need_tree_sitter()
    from .ps_parse import parse_errors

    for script in ("deploy-k8s.ps1", "cleanup-k8s.ps1"):
        assert parse_errors(ROOT / "k8s" / script) == []


def test_powershell_checker_finds_errors(tmp_path):
    _need_tree_sitter()
    from .ps_parse import parse_errors

    bad = tmp_path / "bad.ps1"
    bad.write_text("function f {\n  if ($x -eq 1 { 'a' }\n}\n")
    assert parse_errors(bad)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_is_reachable_only_from_the_labelled_ingress_namespace(renders, overlay):
    policies = [d for d in renders[overlay] if d["kind"] == "NetworkPolicy"]
    grafana = next(w for w in workloads(renders[overlay]) if w["metadata"]["name"] == "grafana")
    dst = {"labels": grafana["spec"]["template"]["metadata"]["labels"]}

    def controller(ns_labels):
        return {"ns": "ingress-nginx", "ns_labels": ns_labels, "labels": {"app": "controller"}}

    labelled = controller(
        {"kubernetes.io/metadata.name": "ingress-nginx", "tradewind.io/grafana-ingress": "true"}
    )
    unlabelled = controller({"kubernetes.io/metadata.name": "ingress-nginx"})
    assert _allowed(policies, dst, "Ingress", labelled, "TCP", 3000, "http")
    assert not _allowed(policies, dst, "Ingress", unlabelled, "TCP", 3000, "http")
    assert not _allowed(policies, dst, "Ingress", labelled, "TCP", 9090, None)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_carries_the_part_of_label_and_the_venue_is_named(renders, overlay):
    for d in renders[overlay]:
        labels = d["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "tradewind", (
            f"{d['kind']}/{d['metadata']['name']} would survive cleanup-k8s"
        )
    config = by_kind(renders[overlay], "ConfigMap")
    (tw,) = [c for n, c in config.items() if n.startswith("tradewind-config")]
    assert tw["data"]["TRADEWIND_EXECUTION__VENUE"] == "paper"


def test_configmap_sources_stay_lf_in_every_checkout():
    """A CRLF checkout would change the generated ConfigMaps' hash names."""
    sources = [
        p
        for p in (ROOT / "k8s").rglob("*")
        if p.is_file() and p.suffix in {".yml", ".yaml", ".json", ".sql", ".env", ".sh"}
    ]
    assert len(sources) > 10
    proc = subprocess.run(
        ["git", "check-attr", "eol", "--", *(str(p.relative_to(ROOT)) for p in sources)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    eol = dict(line.split(": eol: ") for line in proc.stdout.splitlines())
    assert set(eol.values()) == {"lf"}, {k: v for k, v in eol.items() if v != "lf"}
    for p in sources:
        assert b"\r\n" not in p.read_bytes(), p


def test_secrets_guide_uses_a_served_external_secrets_api():
    guide = (ROOT / "k8s" / "SECRETS_GUIDE.md").read_text()
    docs = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", guide, re.S)]
    eso = [d for d in docs if d and d.get("kind") == "ExternalSecret"]
    assert eso and all(d["apiVersion"] == "external-secrets.io/v1" for d in eso)
    assert "external-secrets.io/v1beta1\n" not in guide


def test_each_service_has_its_own_redis_user_secret(renders):
    """Least privilege on the bus: a Secret per service's Redis ACL user, the
    ACL file (default user off) from a Secret of its own (docs/distributed.md)."""
    for overlay in OVERLAYS:
        docs = renders[overlay]
        redis = pod_spec(by_kind(docs, "StatefulSet")["redis"])
        args = redis["containers"][0]["args"]
        assert args[args.index("--aclfile") + 1].startswith("/etc/redis/acl/")
        assert any(
            v.get("secret", {}).get("secretName") == "tradewind-redis-acl" for v in redis["volumes"]
        )
        deployments = by_kind(docs, "Deployment")
        for service, name in K8S_NAMES.items():
            spec = pod_spec(deployments[name])
            env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
            assert env["TRADEWIND_BUS__USERNAME"] == f"tradewind-{service}", name
            assert env["TRADEWIND_BUS__PASSWORD_FILE"] == "/run/secrets/redis_password"
            sources = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]
            names = {s["secret"]["name"] for s in sources["sources"]}
            assert f"tradewind-redis-{name}" in names, (name, names)
            if service in ("risk", "execution"):
                assert env["TRADEWIND_CONTROL__ORDER_KEY_FILE"] == "/run/secrets/order_key"
