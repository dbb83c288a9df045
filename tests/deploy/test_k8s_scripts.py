"""deploy-k8s.sh and cleanup-k8s.sh against a recording fake kubectl.

Every kubectl call and its order is asserted, on the happy path and on each
failure the issue names: a failed query is an error (never "none"), rollback
touches only what the release changed, no confirmation means no change, and
every call carries --context.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, require_tool

CTX = "kind-tw"
TARGET = f"{CTX} (cluster {CTX} at https://127.0.0.1:6443)"
SECRETS = (
    "tradewind-postgres tradewind-control tradewind-exchange tradewind-grafana "
    "tradewind-redis-acl tradewind-redis-ws tradewind-redis-signal tradewind-redis-risk "
    "tradewind-redis-execution tradewind-redis-db-writer"
)
# cleanup removes both order-path layouts' Secrets.
CLEANUP_SECRETS = f"{SECRETS} tradewind-redis-orderpath"
STS = ["postgres", "prometheus", "redis"]
DEPLOYS = ["db-writer", "execution", "fake-exchange", "grafana", "risk", "signal", "ws"]
REV = "deployment\\.kubernetes\\.io/revision"


class Fake:
    def __init__(self, tmp: Path, kubectl: str) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        wrapper = self.bin / "kubectl"
        fake = Path(__file__).with_name("fake_kubectl.py")
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
        wrapper.chmod(0o755)
        self.log = tmp / "calls.log"
        self.table = tmp / "table.json"
        self.real = kubectl

    def run(
        self,
        script: str,
        args: list[str],
        rules: list[dict[str, Any]],
        answers: str | None = None,
    ) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
        """Run a script; with ``answers`` it gets a terminal (util-linux ``script``)
        and the answers typed at its questions, stdout and stderr then merged."""
        self.log.unlink(missing_ok=True)
        self.log.with_suffix(".state").unlink(missing_ok=True)
        self.table.write_text(json.dumps(rules))
        env = {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "FAKE_KUBECTL_LOG": str(self.log),
            "FAKE_KUBECTL_TABLE": str(self.table),
            "REAL_KUBECTL": self.real,
            "KUBECONFIG": str(self.tmp / "no-kubeconfig"),
        }
        cmd = ["bash", str(ROOT / "k8s" / script), *args]
        if answers is not None:
            cmd = [require_tool("script"), "-qec", shlex.join(cmd), "/dev/null"]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env=env,
            input=answers,
            stdin=None if answers is not None else subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        calls = (
            [json.loads(x) for x in self.log.read_text().splitlines()] if self.log.exists() else []
        )
        return proc, calls


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path, require_tool("kubectl"))


def rule(match: str, out: str = "", rc: int = 0, err: str = "", **kw: Any) -> dict[str, Any]:
    return {"match": match, "out": out, "rc": rc, "err": err, **kw}


def short(calls: list[list[str]]) -> list[str]:
    """Each call without its --context (asserted separately) and with temp paths cut."""
    out = []
    for c in calls:
        assert c[:2] == ["--context", CTX], c
        words = []
        for w in c[2:]:
            if "/.render." in w:
                w = "<render>/" + w.rsplit("/", 1)[1]
            elif w.startswith(str(ROOT)):
                w = "<k8s>" + w[len(str(ROOT / "k8s")) :]
            words.append(w)
        out.append(" ".join(words))
    return out


BASE_RULES = [
    rule(r"^--context \S+ kustomize", real=True),
    rule(r"config view --minify", out=TARGET),
    rule(r"version --request-timeout=10s"),
    rule(r"apply -f \S+namespace.yaml", out="namespace/tradewind unchanged\n"),
    rule(r"get secret", out="".join(f"secret/{s}\n" for s in SECRETS.split())),
]

DEPLOY_PROLOGUE = [
    "kustomize --help",
    "kustomize <render>/render -o <render>/manifest.yaml",
    "config view --minify -o jsonpath={.contexts[0].name} (cluster {.clusters[0].name} "
    "at {.clusters[0].cluster.server})",
    "version --request-timeout=10s",
    "apply -f <k8s>/base/namespace.yaml",
    f"-n tradewind get secret {SECRETS} -o name --ignore-not-found",
    "-n tradewind get deployment -l app.kubernetes.io/part-of=tradewind -o "
    f"custom-columns=NAME:.metadata.name,REVISION:.metadata.annotations.{REV} --no-headers",
]
REVISIONS_CALL = DEPLOY_PROLOGUE[-1]
APPLY = [
    "apply --dry-run=server -f <render>/manifest.yaml",
    "apply -f <render>/manifest.yaml",
]


def waits(timeout: str = "300s") -> list[str]:
    return [f"-n tradewind rollout status statefulset/{s} --timeout={timeout}" for s in STS] + [
        f"-n tradewind rollout status deployment/{d} --timeout={timeout}" for d in DEPLOYS
    ]


def revisions(**revs: int) -> str:
    return "".join(f"{name.replace('_', '-')}   {rev}\n" for name, rev in revs.items())


def deploy(fake: Fake, rules: list[dict[str, Any]], *extra: str) -> Any:
    return fake.run("deploy-k8s.sh", ["--context", CTX, "--yes", *extra], [*BASE_RULES, *rules])


# --- deploy --------------------------------------------------------------------------


def test_first_install_calls_in_order(fake: Fake) -> None:
    proc, calls = deploy(
        fake,
        [rule(r"get deployment", out=""), rule(r"apply"), rule(r"rollout status")],
        "--timeout",
        "300",
    )
    assert proc.returncode == 0, proc.stderr
    assert short(calls) == [*DEPLOY_PROLOGUE, *APPLY, *waits("300s")]
    assert "is deployed and ready" in proc.stdout


def test_grouped_deploys_orderpath_and_names_what_the_other_layout_left(fake: Fake) -> None:
    """--grouped: overlays/dev-grouped, orderpath's Redis Secret instead of the
    three, and the five-process Deployments still running are named, not kept
    silently beside orderpath (kubectl apply never deletes)."""
    secrets = SECRETS.replace(
        "tradewind-redis-signal tradewind-redis-risk tradewind-redis-execution",
        "tradewind-redis-orderpath",
    )
    rules = [
        *BASE_RULES[:4],
        rule(r"get secret", out="".join(f"secret/{s}\n" for s in secrets.split())),
        rule(r"get deployment", out=revisions(db_writer=1, execution=1, risk=1, signal=1, ws=1)),
        rule(r"apply"),
        rule(r"rollout status"),
    ]
    proc, calls = fake.run("deploy-k8s.sh", ["--context", CTX, "--yes", "--grouped"], rules)
    assert proc.returncode == 0, proc.stderr
    grouped = ["db-writer", "fake-exchange", "grafana", "orderpath", "ws"]
    assert short(calls) == [
        *[c.replace(SECRETS, secrets) for c in DEPLOY_PROLOGUE],
        *APPLY,
        *[f"-n tradewind rollout status statefulset/{s} --timeout=300s" for s in STS],
        *[f"-n tradewind rollout status deployment/{d} --timeout=300s" for d in grouped],
    ]
    assert (
        "still running but not part of overlay dev-grouped: execution risk signal;" in proc.stderr
    )
    assert "Tradewind (dev-grouped) is deployed and ready" in proc.stdout


def test_grouped_dry_run_needs_orderpaths_secret_only(tmp_path: Path) -> None:
    require_tool("kubectl")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    proc = subprocess.run(
        ["bash", str(ROOT / "k8s" / "deploy-k8s.sh"), "--dry-run", "--grouped"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "overlay:    dev-grouped" in proc.stdout
    assert "    tradewind-redis-orderpath\n" in proc.stdout
    for gone in ("signal", "risk", "execution"):
        assert f"tradewind-redis-{gone}\n" not in proc.stdout
        assert f"Deployment/{gone}\n" not in proc.stdout
    assert "Deployment/orderpath\n" in proc.stdout


def test_rollback_touches_only_the_deployments_this_release_changed(fake: Fake) -> None:
    before = revisions(ws=3, signal=3, risk=2, execution=5)
    after = revisions(ws=3, signal=4, risk=2, execution=6, db_writer=1)
    proc, calls = deploy(
        fake,
        [
            rule(r"get deployment", out=before, times=1),
            rule(r"get deployment", out=after),
            rule(r"apply"),
            rule(r"rollout status deployment/signal", rc=1, err="timed out\n", times=1),
            rule(r"rollout status"),
            rule(r"rollout undo deployment/(signal|execution)$", out="rolled back\n"),
        ],
    )
    assert proc.returncode == 1
    assert short(calls) == [
        *DEPLOY_PROLOGUE,
        *APPLY,
        *waits(),
        REVISIONS_CALL,
        "-n tradewind rollout undo deployment/signal",
        "-n tradewind rollout undo deployment/execution",
        "-n tradewind rollout status deployment/signal --timeout=300s",
        "-n tradewind rollout status deployment/execution --timeout=300s",
    ]
    assert "deployment/db-writer was created by this release: not rolled back" in proc.stderr
    assert "deployment of overlay dev failed" in proc.stderr


def test_no_rollback_leaves_the_release(fake: Fake) -> None:
    proc, calls = deploy(
        fake,
        [
            rule(r"get deployment"),
            rule(r"apply"),
            rule(r"rollout status deployment/ws", rc=1),
            rule("rollout status"),
        ],
        "--no-rollback",
    )
    assert proc.returncode == 1
    assert short(calls) == [*DEPLOY_PROLOGUE, *APPLY, *waits()]
    assert "no rollback (--no-rollback)" in proc.stderr


def test_a_failed_apply_midway_rolls_back_what_it_changed(fake: Fake) -> None:
    proc, calls = deploy(
        fake,
        [
            rule(r"get deployment", out=revisions(ws=1, signal=1), times=1),
            rule(r"get deployment", out=revisions(ws=2, signal=1)),
            rule(r"apply --dry-run=server"),
            rule(
                r"apply -f \S+manifest", out="deployment.apps/ws configured\n", rc=1, err="boom\n"
            ),
            rule(r"rollout"),
        ],
    )
    assert proc.returncode == 1
    assert short(calls) == [
        *DEPLOY_PROLOGUE,
        *APPLY,
        REVISIONS_CALL,
        "-n tradewind rollout undo deployment/ws",
        "-n tradewind rollout status deployment/ws --timeout=300s",
    ]
    assert "kubectl apply failed midway" in proc.stderr


def test_the_server_side_dry_run_stops_before_any_change(fake: Fake) -> None:
    proc, calls = deploy(
        fake,
        [rule(r"get deployment"), rule(r"apply --dry-run=server", rc=1, err="admission denied\n")],
    )
    assert proc.returncode == 1
    assert short(calls) == [*DEPLOY_PROLOGUE, APPLY[0]]
    assert "nothing applied" in proc.stderr


@pytest.mark.parametrize(
    ("failing", "calls_made", "message"),
    [
        (r"get secret", 6, "cannot look up the Secrets"),
        (r"get deployment", 7, "cannot read the current Deployments"),
        (r"version", 4, "cannot reach the cluster"),
        (r"config view", 3, "cannot read the kubectl configuration"),
    ],
)
def test_a_failed_query_is_an_error(
    fake: Fake, failing: str, calls_made: int, message: str
) -> None:
    rules = [rule(failing, rc=1, err="Error from server (Forbidden)\n"), *BASE_RULES[:1]]
    rules += [r for r in BASE_RULES[1:] if r["match"] != failing] + [rule("get deployment")]
    proc, calls = fake.run("deploy-k8s.sh", ["--context", CTX, "--yes"], rules)
    assert proc.returncode == 1, proc.stderr
    assert short(calls) == DEPLOY_PROLOGUE[:calls_made]
    assert message in proc.stderr


def test_a_missing_secret_is_named(fake: Fake) -> None:
    rules = [
        rule(r"get secret", out="secret/tradewind-postgres\nsecret/tradewind-control\n"),
        *BASE_RULES,
    ]
    proc, calls = fake.run("deploy-k8s.sh", ["--context", CTX, "--yes"], rules)
    assert proc.returncode == 1
    assert short(calls) == DEPLOY_PROLOGUE[:6]
    assert (
        "missing Secrets in namespace tradewind: tradewind-exchange tradewind-grafana "
        "tradewind-redis-acl" in proc.stderr
    )


def test_without_yes_and_without_a_terminal_nothing_changes(fake: Fake) -> None:
    proc, calls = fake.run("deploy-k8s.sh", ["--context", CTX], BASE_RULES)
    assert proc.returncode == 3
    assert short(calls) == DEPLOY_PROLOGUE[:4]
    assert f"Deploy overlay dev to namespace tradewind on context {TARGET}?" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "5x"],
        ["--timeout", "0"],
        ["--timeout", ""],
        ["--overlay", "prod", "--tag", "1.2.3"],
        ["--overlay", "staging"],
        ["--bogus"],
        ["--context"],
    ],
)
def test_usage_errors_exit_2_before_any_call(fake: Fake, args: list[str]) -> None:
    proc, calls = fake.run("deploy-k8s.sh", args, BASE_RULES)
    assert proc.returncode == 2, proc.stderr
    assert calls == []


def test_prod_tag_with_registry_renders_that_image(fake: Fake) -> None:
    proc, _ = fake.run(
        "deploy-k8s.sh",
        [
            "--context",
            CTX,
            "--overlay",
            "prod",
            "--registry",
            "ghcr.io/acme",
            "--tag",
            "1.2.3",
            "--dry-run",
        ],
        BASE_RULES,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ghcr.io/acme/tradewind:1.2.3" in proc.stdout and "docker.io" not in proc.stdout


# --- cleanup ---------------------------------------------------------------------------

KINDS = (
    "deployment,statefulset,service,configmap,horizontalpodautoscaler,poddisruptionbudget,"
    "networkpolicy,serviceaccount,role,rolebinding,job"
)
CLEAN_PROLOGUE = [
    DEPLOY_PROLOGUE[2],
    DEPLOY_PROLOGUE[3],
    "get namespace tradewind -o name --ignore-not-found",
]
DELETE_KINDS = (
    f"-n tradewind delete {KINDS} -l app.kubernetes.io/part-of=tradewind "
    "--ignore-not-found --wait=true"
)
GET_PVC = "-n tradewind get pvc -o name"
PVCS = "persistentvolumeclaim/data-postgres-0\npersistentvolumeclaim/data-redis-0\n"
CLEAN_RULES = [
    rule(r"config view --minify", out=TARGET),
    rule(r"version"),
    rule(r"get namespace", out="namespace/tradewind\n"),
]


def cleanup(fake: Fake, rules: list[dict[str, Any]], *args: str, answers: str | None = None) -> Any:
    return fake.run(
        "cleanup-k8s.sh", ["--context", CTX, *args], [*CLEAN_RULES, *rules], answers=answers
    )


def test_delete_data_keeps_the_secrets_and_so_the_namespace(fake: Fake) -> None:
    proc, calls = cleanup(
        fake, [rule(r"delete"), rule(r"get pvc", out=PVCS)], "--delete-data", "--yes"
    )
    assert proc.returncode == 0, proc.stderr
    assert short(calls) == [
        *CLEAN_PROLOGUE,
        DELETE_KINDS,
        GET_PVC,
        "-n tradewind delete pvc --all --wait=true",
    ]
    assert "namespace tradewind kept: it holds the Secrets" in proc.stdout


def test_delete_everything(fake: Fake) -> None:
    proc, calls = cleanup(
        fake,
        [rule(r"delete"), rule(r"get pvc", out=PVCS)],
        "--delete-data",
        "--delete-secrets",
        "--yes",
    )
    assert proc.returncode == 0, proc.stderr
    assert short(calls) == [
        *CLEAN_PROLOGUE,
        DELETE_KINDS,
        f"-n tradewind delete secret {CLEANUP_SECRETS} --ignore-not-found",
        GET_PVC,
        "-n tradewind delete pvc --all --wait=true",
        "delete namespace tradewind --ignore-not-found",
    ]


def test_a_failed_pvc_query_deletes_no_data(fake: Fake) -> None:
    proc, calls = cleanup(
        fake,
        [rule(r"get pvc", rc=1, err="Unable to connect\n"), rule(r"delete")],
        "--delete-data",
        "--delete-secrets",
        "--yes",
    )
    assert proc.returncode == 1
    assert short(calls) == [
        *CLEAN_PROLOGUE,
        DELETE_KINDS,
        f"-n tradewind delete secret {CLEANUP_SECRETS} --ignore-not-found",
        GET_PVC,
    ]
    assert "cannot list the PersistentVolumeClaims" in proc.stderr


def test_no_terminal_no_yes_deletes_nothing(fake: Fake) -> None:
    proc, calls = cleanup(fake, [rule(r"delete")], "--delete-data")
    assert proc.returncode == 3
    assert short(calls) == CLEAN_PROLOGUE
    assert f"on context {TARGET}?" in proc.stderr


def test_a_failed_namespace_query_is_an_error(fake: Fake) -> None:
    proc, calls = fake.run(
        "cleanup-k8s.sh",
        ["--context", CTX, "--yes"],
        [rule(r"get namespace", rc=1, err="Forbidden\n"), *CLEAN_RULES],
    )
    assert proc.returncode == 1
    assert short(calls) == CLEAN_PROLOGUE


def test_a_missing_namespace_is_nothing_to_do(fake: Fake) -> None:
    proc, calls = fake.run(
        "cleanup-k8s.sh", ["--context", CTX, "--yes"], [rule(r"get namespace"), *CLEAN_RULES]
    )
    assert proc.returncode == 0
    assert short(calls) == CLEAN_PROLOGUE
    assert "nothing to do" in proc.stdout


def test_a_failed_delete_stops_there(fake: Fake) -> None:
    proc, calls = cleanup(
        fake, [rule(r"delete deployment", rc=1)], "--delete-data", "--delete-secrets", "--yes"
    )
    assert proc.returncode == 1
    assert short(calls) == [*CLEAN_PROLOGUE, DELETE_KINDS]


def test_answers_at_a_terminal(fake: Fake) -> None:
    rules = [rule(r"delete"), rule(r"get pvc", out=PVCS)]
    proc, calls = cleanup(fake, rules, "--delete-data", "--delete-secrets", answers="y\ny\nn\n")
    assert proc.returncode == 3, proc.stdout
    assert short(calls) == [
        *CLEAN_PROLOGUE,
        DELETE_KINDS,
        f"-n tradewind delete secret {CLEANUP_SECRETS} --ignore-not-found",
        GET_PVC,
    ]
    assert "not confirmed: nothing more is done" in proc.stdout
    proc, calls = cleanup(
        fake, rules, "--delete-data", "--delete-secrets", answers="y\ny\ny\nyes\n"
    )
    assert proc.returncode == 0, proc.stdout
    assert short(calls)[-2:] == [
        "-n tradewind delete pvc --all --wait=true",
        "delete namespace tradewind --ignore-not-found",
    ]
    assert proc.stdout.count(f"on context {TARGET}? [y/N]") == 4


def test_deploy_answered_no_changes_nothing(fake: Fake) -> None:
    proc, calls = fake.run("deploy-k8s.sh", ["--context", CTX], BASE_RULES, answers="n\n")
    assert proc.returncode == 3, proc.stdout
    assert short(calls) == DEPLOY_PROLOGUE[:4]
