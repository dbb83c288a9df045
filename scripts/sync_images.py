"""Write every image reference from deploy/images.env, or check them (--check).

deploy/images.env is the one place that names image tags and digests; the
Dockerfile, docker-compose.yml, .env.example and the kustomize base only
mirror it, because each tool reads its own file format. Keeping the mirrors generated and checked
in CI is what stops them drifting apart.

Usage: python scripts/sync_images.py [--check]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / "deploy" / "images.env"
# images.env variable -> the bare name the Kubernetes manifests use.
K8S_NAMES = {
    "REDIS_IMAGE": "redis",
    "POSTGRES_IMAGE": "postgres",
    "PROMETHEUS_IMAGE": "prometheus",
    "GRAFANA_IMAGE": "grafana",
}
K8S_MANIFESTS = {name: ROOT / "k8s" / "base" / f"{name}.yaml" for name in K8S_NAMES.values()}
KUSTOMIZATION = ROOT / "k8s" / "base" / "kustomization.yaml"
BEGIN, END = "  # BEGIN deploy/images.env", "  # END deploy/images.env"


def read_env(path: Path) -> dict[str, str]:
    images: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_]+", key) or not value:
            raise ValueError(f"{path.name}: not NAME=IMAGE: {raw!r}")
        images[key] = value
    missing = {"PYTHON_BASE", *K8S_NAMES} - images.keys()
    if missing:
        raise ValueError(f"{path.name}: missing {', '.join(sorted(missing))}")
    return images


def split_image(ref: str) -> tuple[str, str, str]:
    """(name, tag, digest) of NAME[:TAG][@sha256:DIGEST]; tag and digest may be ''."""
    name, _, digest = ref.partition("@")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    if digest and not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"not a sha256 digest: {ref}")
    if not tag and not digest:
        raise ValueError(f"neither tag nor digest: {ref}")
    return name, tag, digest


def kustomize_block(images: dict[str, str]) -> str:
    lines = [BEGIN]
    for var, bare in K8S_NAMES.items():
        name, tag, digest = split_image(images[var])
        lines += [f"  - name: {bare}", f"    newName: {name}"]
        if tag:
            lines.append(f'    newTag: "{tag}"')
        if digest:
            lines.append(f"    digest: {digest}")
    lines.append(END)
    return "\n".join(lines)


def render(images: dict[str, str]) -> dict[Path, str]:
    """Every mirrored file as it should read."""
    out: dict[Path, str] = {}
    dockerfile = ROOT / "Dockerfile"
    text = dockerfile.read_text()
    out[dockerfile] = re.sub(
        r"^ARG PYTHON_BASE=\S+$", f"ARG PYTHON_BASE={images['PYTHON_BASE']}", text, flags=re.M
    )
    compose = ROOT / "docker-compose.yml"
    text = compose.read_text()
    for var in K8S_NAMES:
        text = re.sub(rf"\$\{{{var}:-[^}}]*\}}", f"${{{var}:-{images[var]}}}", text)
    out[compose] = text
    # A copied .env overrides Compose's defaults: a stale example would pin old images.
    example = ROOT / ".env.example"
    text = example.read_text()
    for var in K8S_NAMES:
        text = re.sub(rf"^{var}=\S*$", f"{var}={images[var]}", text, flags=re.M)
    out[example] = text
    for bare, path in K8S_MANIFESTS.items():
        text = path.read_text()
        out[path] = re.sub(rf"^(\s+image: )\S*{bare}\S*$", rf"\g<1>{bare}", text, flags=re.M)
    text = KUSTOMIZATION.read_text()
    block = kustomize_block(images)
    if BEGIN in text:
        text = re.sub(rf"{re.escape(BEGIN)}.*?{re.escape(END)}", block, text, flags=re.S)
    else:
        text = re.sub(r"^images:\n", f"images:\n{block}\n", text, count=1, flags=re.M)
    out[KUSTOMIZATION] = text
    return out


def main(argv: list[str]) -> int:
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print("tradewind: usage: python scripts/sync_images.py [--check]", file=sys.stderr)
        return 2
    try:
        images = read_env(ENV_FILE)
        wanted = render(images)
    except (OSError, ValueError) as exc:
        print(f"tradewind: {exc}", file=sys.stderr)
        return 2
    stale = [p for p, text in wanted.items() if p.read_text() != text]
    if check:
        for p in stale:
            print(f"out of sync with deploy/images.env: {p.relative_to(ROOT)}")
        if stale:
            print("run: python scripts/sync_images.py")
            return 1
        print(f"{len(wanted)} files name the images of deploy/images.env")
        return 0
    for p in stale:
        p.write_text(wanted[p])
        print(f"updated {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
