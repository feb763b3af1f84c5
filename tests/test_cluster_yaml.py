"""cluster.yaml passes the checks `ray up` runs first (Ray's prepare_config + validate_config against the bundled
schema, offline, no AWS credentials) and boots: every setup and start command, rendered as Ray runs them, installs
into Ray's own Python 3.11 image, starts MLflow (basic auth, S3 artifacts, the head's private address) before
`ray start`, and hands its URI and login to `ray start` and to jobs. k8s/rayjob.yaml is a KubeRay RayJob whose
fields are the CRD's. Each check is run once more against broken copies of the files, which it must refuse."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import ray
import yaml
from mlflow.environment_variables import (
    MLFLOW_AUTH_ADMIN_PASSWORD,
    MLFLOW_AUTH_ADMIN_USERNAME,
    MLFLOW_AUTH_CONFIG_PATH,
    MLFLOW_FLASK_SERVER_SECRET_KEY,
    MLFLOW_TRACKING_PASSWORD,
    MLFLOW_TRACKING_URI,
    MLFLOW_TRACKING_USERNAME,
)
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.runtime_env import RuntimeEnv

from mdaug.config import load_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = (REPO / "cluster.yaml").read_text()
RAYJOB = (REPO / "k8s" / "rayjob.yaml").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# the tested versions: constraints.txt's `name==version` lines, by name
PINS = {re.split(r"[\[=]", line, maxsplit=1)[0].lower(): line.lower()  # names compare case-blind (PyYAML)
        for line in (REPO / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")}
# ">=3.11" → (3, 11): the Python the package needs, which the images and the setup check must say
PYTHON = tuple(int(x) for x in re.fullmatch(r">=\s*(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"]).groups())
# mdaug's images (docker/Dockerfile, tagged by its base: Ray's image of this Ray and Python, CPU or GPU variant)
IMAGE = re.compile(r"(?P<registry>\S+)/mdaug:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>\d+)-(?P<variant>cpu|gpu)")


def test_cluster_yaml_validates_with_rays_schema():
    raw = yaml.safe_load(CLUSTER)
    config = prepare_config(raw)
    validate_config(config)
    nodes = config["available_node_types"]
    assert config["provider"]["type"] == "aws" and config["head_node_type"] == "head"
    assert nodes["gpu_worker"]["resources"]["GPU"] == 1 and nodes["gpu_worker"]["max_workers"] >= 1
    assert nodes["gpu_worker"]["min_workers"] <= nodes["gpu_worker"]["max_workers"]
    head = " ".join(config["head_start_ray_commands"] + config["head_setup_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head and "mlflow server" in head
    setup = " ".join(config["setup_commands"])
    assert "pip install -e /home/ray/mdaug" in setup
    assert "s3://YOUR-BUCKET" in head  # the documented shared-storage placeholder


def test_a_broken_cluster_yaml_is_refused():
    raw = yaml.safe_load(CLUSTER)
    raw["available_node_types"]["gpu_worker"]["min_workers"] = "many"
    with pytest.raises(Exception, match="many"):
        validate_config(prepare_config(raw))


# ---------------------------------------------------------------------------------------------- cluster.yaml


def _one(commands: list[str], needle: str) -> tuple[int, str]:
    hits = [(i, c) for i, c in enumerate(commands) if needle in c]
    assert len(hits) == 1, f"expected one command with {needle!r}, got {hits}"
    return hits[0]


def check_cluster(text: str) -> None:
    """The rendered commands of cluster.yaml, as `ray up` would run them on the head and on a GPU worker."""
    config = prepare_config(yaml.safe_load(text))
    validate_config(config)
    nodes = config["available_node_types"]

    # mdaug's image of this Ray and the package's Python; CPU head, GPU workers; no per-node image override.
    docker = config["docker"]
    head_img, worker_img = IMAGE.fullmatch(docker["head_image"]), IMAGE.fullmatch(docker["worker_image"])
    assert head_img and worker_img, (docker["head_image"], docker["worker_image"])
    for m in (head_img, worker_img):
        assert m["ray"] == ray.__version__ and m["py"] == "".join(map(str, PYTHON)), m.group(0)
    assert head_img["variant"] == "cpu" and worker_img["variant"] != "cpu", "CPU image for the head, GPU for workers"
    assert not any("docker" in n for n in nodes.values())

    # Every node: the image's Python and Ray checked first, then the synced checkout installed over the image's
    # (editable, constraints.txt's versions: the image has them, nothing is installed at boot; no torch install).
    mount = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    for commands in (config["head_setup_commands"], config["worker_setup_commands"]):
        assert f"sys.version_info[:2] == {PYTHON}" in commands[0] and f"'{ray.__version__}'" in commands[0], (
            "the first setup command checks the image's Python and Ray versions")
        assert f"-c {mount}/constraints.txt" in _one(commands, f"pip install -e {mount}")[1], "pins from constraints"
        assert not any("torch" in c for c in commands), "torch is the image's: no install at every boot"
        assert not any("python3.10" in c or "/home/ubuntu/mdaug" in c for c in commands)
    assert "nvidia-smi" in nodes["gpu_worker"]["initialization_commands"]  # on the host: the AMI has the driver
    # each host logs docker into the images' registry before pulling (the token through a pipe)
    for node, init in (("head", config["initialization_commands"]),
                       ("gpu_worker", nodes["gpu_worker"]["initialization_commands"])):
        login = [c for c in init if "| docker login" in c and c.endswith(f"--password-stdin {head_img['registry']}")]
        assert len(login) == 1, f"{node}: no docker login to {head_img['registry']}: {init}"
    assert head_img["registry"] == worker_img["registry"]

    # The head: MLflow in head_setup_commands (Ray runs them before head_start_ray_commands), answering before
    # `ray start`; basic auth; S3 artifacts; bound to the private address Ray gives this node.
    setup, start = config["head_setup_commands"], config["head_start_ray_commands"]
    assert not any("mlflow server" in c for c in start + config["worker_start_ray_commands"])
    at, server = _one(setup, "mlflow server")
    assert at < _one(setup, "/health")[0], "wait for MLflow to answer before `ray start`"
    opt = dict(re.findall(r"(--[\w-]+)[ =](\$\([^)]*\)|[^-\s]\S*)", server[server.index("mlflow server"):]))
    assert opt.get("--app-name") == "basic-auth", f"MLflow without basic-auth: {opt}"
    assert opt["--artifacts-destination"].startswith("s3://"), "artifacts to S3"
    assert opt["--backend-store-uri"].startswith("sqlite:////"), "an absolute sqlite store"
    host_file = re.fullmatch(r"\$\(cat (\S+)\)", opt["--host"])
    assert host_file, f"MLflow must bind the address in a file written at setup, not {opt['--host']}"
    host_file, port = host_file[1], opt["--port"]
    assert any("get_node_ip_address()" in c and c.endswith(f"> {host_file}") for c in setup[:at])
    # its admin login from a file made on the head (random, owner-only) under the names MLflow reads (checked
    # against the installed mlflow); the synced ~/.mdaug holds only the jobs' login and Ray's token
    mdaug_dir = next(remote for remote, local in config["file_mounts"].items() if local.endswith(".mdaug"))
    env_file = mdaug_dir + "/mlflow.env"
    for name in (MLFLOW_AUTH_CONFIG_PATH, MLFLOW_FLASK_SERVER_SECRET_KEY):
        assert f"{name.name}=" in server, name.name
    admin_file = re.search(r"set -a && \. (\S+) && set \+a", server)[1]
    assert not admin_file.startswith(mdaug_dir), "the admin login must not be synced to every node"
    made = [c for c in setup[:at] if c.endswith(f"> {admin_file})") and "umask 077" in c and "secrets." in c]
    assert len(made) == 1 and f"test -s {admin_file} ||" in made[0], f"the admin login is made once, owner-only: {made}"
    for name in (MLFLOW_AUTH_ADMIN_USERNAME, MLFLOW_AUTH_ADMIN_PASSWORD):
        assert f"{name.name}=" in made[0], name.name
    assert f". {env_file}" not in server and "MLFLOW_TRACKING_PASSWORD" not in server
    # after it answers, the jobs' user (not an admin: scripts/mlflow_job_user.py) from the synced login
    users = _one(setup, "scripts/mlflow_job_user.py")
    assert users[0] > _one(setup, "/health")[0] and f". {admin_file}" in users[1] and f". {env_file}" in users[1]
    script = users[1].split("python ", 1)[1].split()[0]
    assert (REPO / script.removeprefix(mount + "/")).is_file(), script
    ini = re.search(rf"{MLFLOW_AUTH_CONFIG_PATH.name}=(\S+)", server)[1]
    written = [c for c in setup[:at] if c.startswith("printf '") and c.endswith(f"' > {ini}")]
    assert len(written) == 1, f"the basic-auth settings {ini} are written before the server starts"
    auth = configparser.ConfigParser()
    auth.read_string(written[0][len("printf '"):-len(f"' > {ini}")].replace("\\n", "\n"))
    # the two keys mlflow/server/auth/config.py reads without a default; the names of its permissions.py
    assert auth["mlflow"]["default_permission"] in {"READ", "USE", "EDIT", "MANAGE", "DENY", "NO_PERMISSIONS"}
    assert auth["mlflow"]["database_uri"].startswith("sqlite:////"), "users in an absolute sqlite file"
    # `--app-name basic-auth` imports flask_wtf, which only mlflow's `auth` extra installs (at the tested version)
    extra = PINS["mlflow"].replace("mlflow", "mlflow[auth]", 1)
    assert _one(setup, f"'{extra}'")[0] < at, f"{extra} is installed before the server starts"

    # `ray start` gets the URI (the same address and port), the login and Ray's token; nothing goes through ~/.bashrc.
    head_start = _one(start, "ray start --head")[1]
    assert "--dashboard-host=127.0.0.1" in head_start, "the dashboard binds the loopback only"
    worker_start = _one(config["worker_start_ray_commands"], "ray start --address")[1]
    for cmd, uri in ((head_start, f"http://$(cat {host_file}):{port}"), (worker_start, f"http://$RAY_HEAD_IP:{port}")):
        assert f"export {MLFLOW_TRACKING_URI.name}={uri}" in cmd, cmd
        assert f". {env_file}" in cmd and cmd.index(uri) < cmd.index("ray start"), f"no MLflow login for: {cmd}"
        token = re.search(r"export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=(\S+) &&", cmd)
        assert token and cmd.index(token[0]) < cmd.index("ray start"), f"no Ray token authentication for: {cmd}"
        assert token[1].startswith(mdaug_dir + "/"), "the token file is synced to every node (file_mounts)"
        assert "RAY_AUTH_TOKEN=" not in cmd, "the token itself on a command line"
    rendered = [c for key, v in config.items() if key.endswith("_commands") for c in v]
    assert not any(".bashrc" in c for c in rendered), "an export in .bashrc reaches neither ray start nor jobs"
    assert "0.0.0.0" not in text, "no service on all interfaces"

    # An instance profile on the head and on the GPU workers (S3 for checkpoints and MLflow artifacts).
    for node in ("head", "gpu_worker"):
        arn = nodes[node]["node_config"].get("IamInstanceProfile", {}).get("Arn", "")
        assert re.fullmatch(r"arn:aws:iam::[^:]+:instance-profile/\S+", arn), (node, arn)

    # The documented SSH tunnel targets the address and port MLflow binds, as the login user, with Ray's key.
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    tunnels = [line for line in comments if re.search(r"\bssh .*-L ", line)]
    assert len(tunnels) == 1, tunnels
    fwd = re.search(r"-L (\d+):(\S+):(\d+) (\S+)@", tunnels[0])
    assert fwd and fwd[3] == port and fwd[4] == config["auth"]["ssh_user"], tunnels[0]
    assert fwd[2] not in ("localhost", "127.0.0.1"), "MLflow does not listen on the loopback"
    assert any(f"cat {host_file}" in line and f"prints {fwd[2]}" in line for line in comments), fwd[2]
    assert f"ray-autoscaler_{config['provider']['region']}.pem" in tunnels[0]


def test_cluster_yaml_commands_boot_in_order():
    check_cluster(CLUSTER)


# Each a real defect (the first four are the old file's): (text, its replacement, what the refusal must say).
BROKEN_CLUSTER = {
    "python 3.10 image": ("2.60.0-py311-cpu", "2.60.0-py310-cpu", "py310"),
    "URI only in .bashrc": ("    export MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000 &&\n",
                            "    echo export MLFLOW_TRACKING_URI=http://$RAY_HEAD_IP:5000 >> ~/.bashrc &&\n", "bashrc"),
    "no worker profile": ("instance-profile/mdaug-ray-worker", "instance-profile/", "gpu_worker"),
    "tunnel to localhost": ("-L 5000:HEAD_PRIVATE_IP:5000", "-L 5000:localhost:5000", "loopback"),
    "cpu workers": ("2.60.0-py311-gpu", "2.60.0-py311-cpu", "GPU for workers"),
    "other ray": ("2.60.0-py311-gpu", "2.9.0-py311-gpu", "2.9.0"),
    "no basic auth": ("--app-name basic-auth ", "", "basic-auth"),
    "local artifacts": ("--artifacts-destination s3://", "--artifacts-destination file:///", "S3"),
    "public dashboard": ("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0", "loopback only"),
    "mlflow on all interfaces": ("--host $(cat /home/ray/mlflow/host)", "--host 0.0.0.0", "must bind"),
    "no health wait": ("/health'", "/'", "/health"),
    "tunnel to another port": ("HEAD_PRIVATE_IP:5000 ubuntu@", "HEAD_PRIVATE_IP:5001 ubuntu@", "5001"),
    "no login for ray start": ("    set -a && . /home/ray/.mdaug/mlflow.env && set +a &&\n    export MLFLOW_TRACKING_URI=http://$R",
                               "    export MLFLOW_TRACKING_URI=http://$R", "no MLflow login"),
    "no version check": ("assert sys.version_info[:2] == (3, 11) and ", "assert ", "Python and Ray versions"),
    "no auth extra": ("'mlflow[auth]==3.17.2'", "'mlflow==3.17.2'", "mlflow[auth]"),
    "no ray token": ("    export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/home/ray/.mdaug/ray_token &&\n", "",
                     "no Ray token authentication"),
    "admin login on every node": (". /home/ray/mlflow/admin.env && set +a &&\n    export MLFLOW_AUTH_CONFIG_PATH",
                                  ". /home/ray/.mdaug/admin.env && set +a &&\n    export MLFLOW_AUTH_CONFIG_PATH",
                                  "must not be synced"),
    "no job user": ("scripts/mlflow_job_user.py", "scripts/mlflow_users.py", "scripts/mlflow_job_user.py"),
    "torch at every boot": ("  - python -m pip install -e /home/ray/mdaug",
                            "  - python -m pip install torch==2.13.0\n  - python -m pip install -e /home/ray/mdaug",
                            "no install at every boot"),
    "no registry login on workers": ("      - aws ecr get-login-password --region us-east-1 | docker login --username "
                                     "AWS --password-stdin YOUR-REGISTRY\n", "", "gpu_worker: no docker login"),
    "auth settings elsewhere": ("' >\n    /home/ray/mlflow/basic_auth.ini", "' >\n    /tmp/a", "basic-auth settings"),
}


@pytest.mark.parametrize("name", BROKEN_CLUSTER)
def test_a_cluster_yaml_that_would_not_boot_is_refused(name):
    old, new, reason = BROKEN_CLUSTER[name]
    assert old in CLUSTER, f"mutation {name!r} no longer applies"
    with pytest.raises(AssertionError, match=re.escape(reason)):
        check_cluster(CLUSTER.replace(old, new))


# ---------------------------------------------------------------------------------------------- k8s/rayjob.yaml

# Field names of the ray.io/v1 RayJob, read from ray-project/kuberay ray-operator/config/crd/bases/ray.io_rayjobs.yaml
# at commit feeaf72facab4881ba2b179248bb67315634e229 (v1.7.0-rc.0 + 5 commits, KubeRay 1.7): the properties of
# spec, spec.rayClusterSpec, its headGroupSpec and workerGroupSpecs[], and their `required` lists.
RAYJOB_TOP = {"apiVersion", "kind", "metadata", "spec", "status"}
RAYJOB_SPEC = {"activeDeadlineSeconds", "backoffLimit", "clusterSelector", "deletionStrategy", "entrypoint",
               "entrypointNumCpus", "entrypointNumGpus", "entrypointResources", "jobId", "managedBy", "metadata",
               "preRunningDeadlineSeconds", "rayClusterSpec", "runtimeEnvYAML", "shutdownAfterJobFinishes",
               "submissionMode", "submitterConfig", "submitterPodTemplate", "suspend", "ttlSecondsAfterFinished"}
RAYCLUSTER_SPEC = {"authOptions", "autoscalerOptions", "enableInTreeAutoscaling", "gcsFaultToleranceOptions",
                   "headGroupSpec", "headServiceAnnotations", "historyServerOptions", "managedBy", "networkPolicy",
                   "rayVersion", "suspend", "tlsOptions", "upgradeStrategy", "workerGroupSpecs"}
RAYCLUSTER_REQUIRED = {"headGroupSpec"}
HEAD_GROUP = {"enableIngress", "headService", "ingressOptions", "labels", "rayStartParams", "resources",
              "serviceType", "template"}
HEAD_GROUP_REQUIRED = {"template"}
WORKER_GROUP = {"groupName", "idleTimeoutSeconds", "labels", "maxReplicas", "minReplicas", "numOfHosts", "priority",
                "rayStartParams", "replicas", "resources", "scaleStrategy", "suspend", "template"}
WORKER_GROUP_REQUIRED = {"groupName", "maxReplicas", "minReplicas", "template"}
# types the CRD gives the fields this manifest sets
SPEC_TYPES = {"entrypoint": str, "runtimeEnvYAML": str, "shutdownAfterJobFinishes": bool,
              "ttlSecondsAfterFinished": int, "backoffLimit": int}


def _fields(where: str, obj: dict, allowed: set[str], required: set[str] = frozenset()) -> None:
    assert isinstance(obj, dict), where
    assert not set(obj) - allowed, f"{where}: fields the CRD does not have: {sorted(set(obj) - allowed)}"
    assert not required - set(obj), f"{where}: missing required {sorted(required - set(obj))}"


def check_rayjob(text: str) -> None:
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["RayJob", "NetworkPolicy"], "the RayJob, then its NetworkPolicy"
    job = docs[0]
    _fields("RayJob", job, RAYJOB_TOP, {"apiVersion", "kind", "spec"})
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    _fields("spec", spec, RAYJOB_SPEC, {"entrypoint", "rayClusterSpec"})
    for key, kind in SPEC_TYPES.items():
        assert isinstance(spec.get(key), kind) and not (kind is int and isinstance(spec[key], bool)), key
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0, "delete the cluster"
    cluster = spec["rayClusterSpec"]
    _fields("rayClusterSpec", cluster, RAYCLUSTER_SPEC, RAYCLUSTER_REQUIRED)
    assert cluster["rayVersion"] == ray.__version__, f"rayVersion {cluster['rayVersion']}"
    head = cluster["headGroupSpec"]
    _fields("headGroupSpec", head, HEAD_GROUP, HEAD_GROUP_REQUIRED)
    workers = cluster["workerGroupSpecs"]
    for i, group in enumerate(workers):
        _fields(f"workerGroupSpecs[{i}]", group, WORKER_GROUP, WORKER_GROUP_REQUIRED)
        assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
    for group in [head, *workers]:  # KubeRay: rayStartParams is a map of strings
        assert all(isinstance(v, str) for v in group.get("rayStartParams", {}).values()), group["rayStartParams"]

    # The same images as cluster.yaml; the GPU group asks Kubernetes for a GPU.
    docker = yaml.safe_load(CLUSTER)["docker"]
    pods = [(head, docker["head_image"])] + [(g, docker["worker_image"]) for g in workers]
    for group, image in pods:
        containers = group["template"]["spec"]["containers"]
        assert containers[0]["image"] == image, (containers[0]["image"], image)
        env = {e["name"]: e for e in containers[0].get("env", [])}
        for name in (MLFLOW_TRACKING_USERNAME.name, MLFLOW_TRACKING_PASSWORD.name):  # the login from a Secret
            assert "secretKeyRef" in env.get(name, {}).get("valueFrom", {}), name
    # Ray's token authentication: KubeRay (≥ 1.6) sets RAY_AUTH_MODE=token and the Secret's token on the head, the
    # workers, the autoscaler and the submitter, and calls the dashboard with it; no pod turns it off.
    auth = cluster.get("authOptions", {})
    assert auth.get("mode") == "token" and auth.get("secretName"), f"no Ray token authentication: {auth}"
    for group, _ in pods:
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0].get("env", [])}
        assert env.get("RAY_AUTH_MODE", {}).get("value", "token") == "token", "a pod turns Ray's token auth off"
        assert "value" not in env.get("RAY_AUTH_TOKEN", {}), "a Ray token written into the manifest"
    check_network_policy(docs[1], job)
    gpus = [g for g in workers if int(g["template"]["spec"]["containers"][0]["resources"]["limits"]
                                      .get("nvidia.com/gpu", 0)) >= 1]
    assert gpus and all(g["maxReplicas"] >= 1 for g in gpus), "no worker group with nvidia.com/gpu"

    # The entrypoint runs a script of this repository with options that script has.
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python" and argv[1].startswith("jobs/") and (REPO / argv[1]).is_file(), argv
    source = (REPO / argv[1]).read_text()
    if command := re.search(r"from mdaug\.commands\.(\w+) import main", source):  # jobs/*.py: a wrapper
        source += (REPO / "platform/mdaug/commands" / f"{command.group(1)}.py").read_text()
    if "add_config_arguments(" in source:  # --config comes from mdaug.config
        source += (REPO / "platform/mdaug/config.py").read_text()
    assert all(f'"{a}"' in source for a in argv[2:] if a.startswith("--")), argv
    config = argv[argv.index("--config") + 1] if "--config" in argv else "tiny"  # its overrides are valid keys
    load_config(config, [a for a in argv[2:] if "=" in a and not a.startswith("-")])

    # runtime_env: valid for Ray; MLflow's URI (no password) in env_vars; no package installs: the dependencies
    # are the image's, installed from constraints.txt (test_dockerfile.py), not a list copied here.
    renv = yaml.safe_load(spec["runtimeEnvYAML"])
    RuntimeEnv(**renv)
    assert renv["env_vars"][MLFLOW_TRACKING_URI.name].startswith("http")
    assert MLFLOW_TRACKING_PASSWORD.name not in renv["env_vars"], "the password belongs in a Secret"
    assert not {"pip", "uv", "conda"} & set(renv), "installs at every start: the dependencies are the image's"


# labels KubeRay itself puts on a RayJob's pods (ray-operator/controllers/ray/common/pod.go labelPod, and
# rayjob_controller.go getSubmitterTemplate, at the commit above); the cluster's name is generated, so
# ray.io/cluster cannot be selected on here
KUBERAY_SUBMITTER = {"ray.io/originated-from-crd": "RayJob"}  # + ray.io/originated-from-cr-name: the RayJob's name
HEAD_PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001}


def _matches(selector: dict, labels: dict) -> bool:
    return bool(selector.get("matchLabels")) and all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def check_network_policy(policy: dict, job: dict) -> None:
    """Ingress to every Ray pod of this RayJob only from its own pods (all ports: Ray's nodes use many), and to the
    dashboard from its submitter and the KubeRay operator; no rule open to everyone."""
    assert policy["apiVersion"] == "networking.k8s.io/v1" and policy["spec"]["policyTypes"] == ["Ingress"]
    selector = policy["spec"]["podSelector"]
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        labels = group["template"].get("metadata", {}).get("labels", {})
        assert _matches(selector, labels), f"the NetworkPolicy does not select these pods: {labels}"
    head_ports = {p["name"]: p["containerPort"] for p in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
                  ["ports"]}
    assert head_ports == HEAD_PORTS, head_ports
    rules = policy["spec"]["ingress"]
    assert all(rule.get("from") for rule in rules), "a rule without `from` admits every pod"
    peers = [(peer, rule.get("ports")) for rule in rules for peer in rule["from"]]
    own = [ports for peer, ports in peers if "podSelector" in peer and "namespaceSelector" not in peer
           and peer["podSelector"] == selector]
    assert own == [None], "the RayJob's own pods reach each other on every port"
    submitter = {**KUBERAY_SUBMITTER, "ray.io/originated-from-cr-name": job["metadata"]["name"]}
    others = [(peer, ports) for peer, ports in peers if peer.get("podSelector") != selector]
    assert any(_matches(peer.get("podSelector", {}), submitter) and "namespaceSelector" not in peer
               for peer, _ in others), "the submitter cannot reach the dashboard"
    for peer, ports in others:
        assert [p["port"] for p in ports or []] == [HEAD_PORTS["dashboard"]], f"{peer} gets more than the dashboard"
        assert "ipBlock" not in peer and peer.get("namespaceSelector", {"matchLabels": 1}) != {}, peer


def test_rayjob_manifest_matches_the_crd_and_the_cluster():
    check_rayjob(RAYJOB)


BROKEN_RAYJOB = {
    "typo in a field": ("  shutdownAfterJobFinishes: true", "  shutdownAfterJobFinish: true", "JobFinish'"),
    "integer rayStartParams": ('num-gpus: "1"', "num-gpus: 1", "num-gpus"),
    "other ray": ('rayVersion: "2.60.0"', 'rayVersion: "2.52.0"', "2.52.0"),
    "no gpu": ('limits: {cpu: "8", memory: 32Gi, nvidia.com/gpu: 1}', 'limits: {cpu: "8", memory: 32Gi}', "nvidia"),
    "missing script": ("python jobs/pipeline.py", "python jobs/run_pipeline.py", "run_pipeline"),
    "unknown option": ("--config paper", "--configuration paper", "--configuration"),
    "unknown key": ("resource_wait_s=900", "resource_wait=900", "unknown configuration key 'resource_wait'"),
    "password in runtime_env": ("    env_vars:\n", '    env_vars:\n      MLFLOW_TRACKING_PASSWORD: "x"\n', "Secret"),
    "no cleanup": ("shutdownAfterJobFinishes: true", "shutdownAfterJobFinishes: false", "delete the cluster"),
    "python 3.10 worker": ("mdaug:2.60.0-py311-gpu", "mdaug:2.60.0-py310-gpu", "py310"),
    "pip at every start": ("    env_vars:\n", "    pip: [mlflow==3.1.0]\n    env_vars:\n", "the image's"),
    "bad working_dir": ('mdaug-src.zip"', 'mdaug-src"', "working_dir"),
    "no min replicas": ("        minReplicas: 0 ", "        minimumReplicas: 0 ", "minimumReplicas"),
    "no ray token auth": ("      mode: token\n", "      mode: disabled\n", "no Ray token authentication"),
    "token auth off in a pod": ("                env:\n",
                                "                env:\n                  - {name: RAY_AUTH_MODE, value: disabled}\n",
                                "turns Ray's token auth off"),
    "policy misses the workers": ("          metadata:\n            labels: {mdaug.io/rayjob: mdaug-pipeline}\n",
                                  "", "does not select"),
    "policy open to all pods": ("            matchLabels: {ray.io/originated-from-cr-name: mdaug-pipeline, "
                                "ray.io/originated-from-crd: RayJob}", "            matchLabels: {}", "submitter"),
    "all ports to others": ("      ports:\n        - {protocol: TCP, port: 8265}\n", "", "more than the dashboard"),
    "no policy": ("kind: NetworkPolicy", "kind: Service", "then its NetworkPolicy"),
}


@pytest.mark.parametrize("name", BROKEN_RAYJOB)
def test_a_broken_rayjob_is_refused(name):
    old, new, reason = BROKEN_RAYJOB[name]
    assert old in RAYJOB, f"mutation {name!r} no longer applies"
    with pytest.raises((AssertionError, ValueError), match=re.escape(reason)):
        check_rayjob(RAYJOB.replace(old, new))
