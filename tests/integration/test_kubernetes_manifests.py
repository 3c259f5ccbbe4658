"""The deployment files shipped in config/ that no test runs a server
through: the Kubernetes manifests, validated offline against the API
schemas kubernetes-validate bundles (--strict: unknown fields are errors)
and linted with yamllint. What this cannot check without a cluster: the
probes' timing, the preStop sleep against a real endpoint controller, the
resource sizes under a real scheduler."""

import subprocess
import sys
from pathlib import Path

from support import REPO_ROOT

MANIFESTS = sorted((REPO_ROOT / "config" / "kubernetes").glob("*.yaml"))
BIN = Path(sys.executable).parent


def run(tool, *args):
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_the_manifests_are_valid_kubernetes_objects():
    assert {m.name for m in MANIFESTS} == {"deployment.yaml", "service.yaml", "poddisruptionbudget.yaml"}
    result = run("kubernetes-validate", "--strict", *MANIFESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(MANIFESTS), result.stdout


def test_a_broken_manifest_is_refused(tmp_path):
    """The check can fail: a misspelt field is an error."""
    broken = tmp_path / "deployment.yaml"
    broken.write_text((REPO_ROOT / "config" / "kubernetes" / "deployment.yaml").read_text().replace("replicas:", "replica:"))
    result = run("kubernetes-validate", "--strict", broken)
    assert result.returncode != 0 and "replica" in result.stdout + result.stderr, result.stdout + result.stderr


def test_the_manifests_pass_yamllint():
    result = run("yamllint", "--strict", *MANIFESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deployment_matches_rwsgi_settings():
    """terminationGracePeriodSeconds covers preStop plus --graceful-timeout,
    and the probes point at the --metrics-bind port."""
    import yaml
    deployment = yaml.safe_load((REPO_ROOT / "config" / "kubernetes" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (web,) = pod["containers"]
    args = dict(a.lstrip("-").split("=", 1) for a in web["args"] if a.startswith("--"))
    pre_stop = int(web["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + int(args["graceful-timeout"])
    metrics_port = int(args["metrics-bind"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports["metrics"] == metrics_port
    assert web["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert web["livenessProbe"]["httpGet"] == {"path": "/live", "port": "metrics"}
