"""The cluster launcher configs pass Ray's own validation; the KubeRay manifests carry what the
operator needs; the job entrypoints and manifests point at files that exist."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
REPO = CLUSTER.parent


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_config_passes_rays_validation(name):
    config = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(config))  # Ray's JSON schema, after Ray fills its defaults
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head only schedules"
    gpus = sorted(t["resources"].get("GPU", 0) for n, t in types.items() if n != "head")
    assert gpus == [1, 8], "one 1-GPU and one 8-GPU worker type"
    assert all(
        t["min_workers"] == 0 and t["max_workers"] >= 1 for n, t in types.items() if n != "head"
    )
    setup = " ".join(config["setup_commands"])
    assert "pip install -e /home/ubuntu/collapse" in setup
    assert config["file_mounts"]["/home/ubuntu/collapse"] == "."
    assert all("RAY_AUTH_MODE=token" in c for c in config["head_start_ray_commands"][1:])


def test_a_broken_launcher_config_is_rejected():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    del config["available_node_types"]["gpu_1x_l40s"]["resources"]
    with pytest.raises(Exception, match="resources"):
        validate_config(prepare_config(config))


def _containers(pod_template):
    return pod_template["spec"]["containers"]


def _check_token_env(container):
    env = {e["name"]: e for e in container["env"]}
    assert env["RAY_AUTH_MODE"]["value"] == "token"
    assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"], "the token comes from a Secret"


def _check_cluster_spec(spec):
    head = spec["headGroupSpec"]
    assert "rayStartParams" in head
    (head_container,) = _containers(head["template"])
    assert head_container["image"] and head_container["resources"]["limits"]
    _check_token_env(head_container)
    (gpu,) = spec["workerGroupSpecs"]
    assert gpu["groupName"] and "rayStartParams" in gpu
    assert gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    (worker,) = _containers(gpu["template"])
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    _check_token_env(worker)


def test_kuberay_raycluster_manifest():
    manifest = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    assert manifest["metadata"]["name"]
    assert manifest["spec"]["rayVersion"].startswith("2.60")
    _check_cluster_spec(manifest["spec"])


def test_kuberay_rayjob_manifest_runs_a_chain_entrypoint():
    manifest = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayJob")
    spec = manifest["spec"]
    command = shlex.split(spec["entrypoint"])
    assert command[:2] == ["python", "ray_jobs/run_chain.py"]
    assert (REPO / command[1]).is_file()
    assert (REPO / command[command.index("--config") + 1]).is_file()
    assert spec["shutdownAfterJobFinishes"] is True
    assert yaml.safe_load(spec["runtimeEnvYAML"])["working_dir"]
    _check_cluster_spec(spec["rayClusterSpec"])
