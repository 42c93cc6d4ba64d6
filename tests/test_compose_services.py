"""Compose services into the typed Service: every mapped key, warnings and refusals."""

from __future__ import annotations

import textwrap

import pytest

from compose_operator.compose import load_project
from compose_operator.errors import ComposeError, Warning
from compose_operator.project import (
    ComposeProject,
    Escalations,
    HealthCheck,
    Port,
    Resources,
    Service,
    VolumeMount,
)

HEADER = "volumes:\n  data:\nservices:\n  app:\n"
FIRST_LINE = 5
"""The line of the service body's first key."""


def project(body: str) -> ComposeProject:
    return load_project(HEADER + textwrap.indent(textwrap.dedent(body), "    "))


def service(body: str) -> Service:
    return project(body).services["app"]


def messages(body: str) -> list[str]:
    with pytest.raises(ComposeError) as caught:
        project(body)
    return caught.value.messages


def warnings(body: str) -> tuple[Warning, ...]:
    return project(body).warnings


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("image: nginx", Service(name="app", image="nginx")),
        ("build: .", Service(name="app")),
        ("build: {context: ., dockerfile: Dockerfile.dev}", Service(name="app")),
        (
            "image: a\ncommand: python -m app --name 'a b'",
            Service(name="app", image="a", command=("python", "-m", "app", "--name", "a b")),
        ),
        (
            "image: a\ncommand: [sh, -c, 'echo $$HOME']",
            Service(name="app", image="a", command=("sh", "-c", "echo $HOME")),
        ),
        ("image: a\ncommand: []", Service(name="app", image="a", command=())),
        ("image: a\ncommand: null", Service(name="app", image="a")),
        (
            "image: a\nentrypoint: /bin/tini --",
            Service(name="app", image="a", entrypoint=("/bin/tini", "--")),
        ),
        (
            "image: a\nenvironment: {A: x, N: 1, F: 1.5, B: true, E: ''}",
            Service(
                name="app",
                image="a",
                environment={"A": "x", "N": "1", "F": "1.5", "B": "true", "E": ""},
            ),
        ),
        (
            "image: a\nenvironment: [A=x, B=, 'C=a=b']",
            Service(name="app", image="a", environment={"A": "x", "B": "", "C": "a=b"}),
        ),
        (
            "image: a\nports: [8080, '80:8080', '127.0.0.1:81:8081/udp', '9000-9002']",
            Service(
                name="app",
                image="a",
                ports=(
                    Port(8080),
                    Port(8080, 80),
                    Port(8081, 81, "UDP"),
                    Port(9000),
                    Port(9001),
                    Port(9002),
                ),
            ),
        ),
        (
            "image: a\nports: ['8000-8001:9000-9001/UDP', '[::1]:53:53/udp']",
            Service(
                name="app",
                image="a",
                ports=(Port(9000, 8000, "UDP"), Port(9001, 8001, "UDP"), Port(53, 53, "UDP")),
            ),
        ),
        (
            "image: a\nports: [{target: 80, published: '8080', protocol: udp}, {target: '443'}]",
            Service(name="app", image="a", ports=(Port(80, 8080, "UDP"), Port(443))),
        ),
        (
            "image: a\nexpose: [3000, '4000/tcp', '5000-5001']",
            Service(name="app", image="a", expose=(3000, 4000, 5000, 5001)),
        ),
        ("image: a\ndeploy: {replicas: 3}", Service(name="app", image="a", replicas=3)),
        ("image: a\nscale: 2", Service(name="app", image="a", replicas=2)),
        ("image: a\nscale: 2\ndeploy: {replicas: '2'}", Service(name="app", image="a", replicas=2)),
        ("image: a\ndeploy: {replicas: 0}", Service(name="app", image="a", replicas=0)),
        (
            "image: a\ndeploy:\n  resources:\n    limits: {cpus: '0.5', memory: 512m}\n    "
            "reservations: {cpus: 2, memory: 1g}",
            Service(
                name="app",
                image="a",
                resources=Resources(
                    cpu_limit="500m", memory_limit="512Mi", cpu_request="2", memory_request="1Gi"
                ),
            ),
        ),
        (
            "image: a\ndeploy:\n  resources:\n    reservations:\n      devices: [{driver: "
            "nvidia, capabilities: [gpu], count: 2}]",
            Service(name="app", image="a", resources=Resources(gpus=2)),
        ),
        (
            "image: a\ncpus: 1.5\nmem_limit: 2g\nmem_reservation: 1.5GB",
            Service(
                name="app",
                image="a",
                resources=Resources(cpu_limit="1500m", memory_limit="2Gi", memory_request="1536Mi"),
            ),
        ),
        (
            "image: a\nhealthcheck: {test: [CMD, curl, -f, 'http://localhost'], interval: "
            "1m30s, timeout: 10s, retries: 5, start_period: 500ms}",
            Service(
                name="app",
                image="a",
                healthcheck=HealthCheck(("curl", "-f", "http://localhost"), 90, 10, 5, 1),
            ),
        ),
        (
            "image: a\nhealthcheck: {test: [CMD-SHELL, curl -f localhost || exit 1]}",
            Service(
                name="app",
                image="a",
                healthcheck=HealthCheck(("/bin/sh", "-c", "curl -f localhost || exit 1")),
            ),
        ),
        (
            "image: a\nhealthcheck: {test: pg_isready, interval: 1h2m3.5s}",
            Service(
                name="app",
                image="a",
                healthcheck=HealthCheck(("/bin/sh", "-c", "pg_isready"), interval_seconds=3724),
            ),
        ),
        ("image: a\nhealthcheck: {test: [NONE]}", Service(name="app", image="a")),
        ("image: a\nhealthcheck: {test: [CMD, x], disable: true}", Service(name="app", image="a")),
        (
            "image: a\nlabels: [a=1, flag]\n",
            Service(name="app", image="a", labels={"a": "1", "flag": ""}),
        ),
        (
            "image: a\nlabels: {com.example.n: 2}\n",
            Service(name="app", image="a", labels={"com.example.n": "2"}),
        ),
        (
            "image: a\nworking_dir: /srv\nuser: 1000",
            Service(name="app", image="a", working_dir="/srv", user="1000"),
        ),
        ("image: a\nuser: '1000:1000'", Service(name="app", image="a", user="1000:1000")),
        (
            "image: a\nvolumes: ['data:/var/data', 'data:/ro:ro,z', './src:/src', "
            "'/etc/x:/x:ro', '~/.cache:/c', '..:/up']",
            Service(
                name="app",
                image="a",
                volumes=(
                    VolumeMount("data", "/var/data"),
                    VolumeMount("data", "/ro", read_only=True),
                    VolumeMount("src", "/src", bind=True),
                    VolumeMount("/etc/x", "/x", read_only=True, bind=True),
                    VolumeMount("~/.cache", "/c", bind=True),
                    VolumeMount("..", "/up", bind=True),
                ),
            ),
        ),
        (
            "image: a\nvolumes:\n  - {type: volume, source: data, target: /d, read_only: "
            "true}\n  - {type: bind, source: /host, target: /h}",
            Service(
                name="app",
                image="a",
                volumes=(
                    VolumeMount("data", "/d", read_only=True),
                    VolumeMount("/host", "/h", bind=True),
                ),
            ),
        ),
        (
            "image: a\nprivileged: true\nnetwork_mode: host\npid: host\nipc: host\ncap_add: "
            "[NET_ADMIN]\ndevices: ['/dev/kfd', {source: /dev/dri, target: /dev/dri}]",
            Service(
                name="app",
                image="a",
                escalations=Escalations(
                    True, True, True, True, ("NET_ADMIN",), ("/dev/kfd", "/dev/dri")
                ),
            ),
        ),
        ("image: a\nprivileged: 'false'", Service(name="app", image="a")),
        ("image: a\nx-custom: {anything: 1}", Service(name="app", image="a")),
    ],
    ids=lambda value: value.replace("\n", " ")[:60] if isinstance(value, str) else None,
)
def test_service(body: str, expected: Service) -> None:
    assert service(body) == expected


S = "compose.yaml: services.app"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "container_name: x",
            [f'{S}: service "app" has neither an image nor a build context specified (line 4)'],
        ),
        ("image: ''", [f"{S}.image: must be a non-empty string, got '' (line 5)"]),
        ("image: a\nimgae: b", [f"{S}.imgae: unknown key 'imgae'; did you mean 'image'? (line 6)"]),
        (
            "image: a\nenviroment: {}",
            [f"{S}.enviroment: unknown key 'enviroment'; did you mean 'environment'? (line 6)"],
        ),
        (
            "image: a\nextends: {file: base.yaml, service: app}",
            [
                f"{S}.extends.file: base.yaml is not among the project files; carry it in "
                "spec.files (`compose-operator convert` does) (line 6)"
            ],
        ),
        (
            "image: a\nenv_file: .env",
            [
                f"{S}.env_file: .env is not among the project files; carry it in spec.files "
                "(`compose-operator convert` does) (line 6)"
            ],
        ),
        (
            "provider: {type: model, options: {model: ai/smollm2}}",
            [
                f"{S}.provider: provider services are not supported; declare the model under "
                f"the top-level models element and list it in the service's models (line 5)"
            ],
        ),
        (
            'image: a\ncommand: "echo \'unclosed"',
            [
                f'{S}.command: cannot split "echo \'unclosed" into words: No closing quotation '
                f"(line 6)"
            ],
        ),
        ("image: a\ncommand: [echo, 1]", [f"{S}.command[1]: must be a string, got 1 (line 6)"]),
        (
            "image: a\nenvironment: [=x]",
            [
                f"{S}.environment[0]: '' is not a valid environment variable name: letters, "
                "digits, '_', '-' and '.', not starting with a digit (line 6)"
            ],
        ),
        (
            "image: a\nenvironment: {A: [1]}",
            [f"{S}.environment.A: must be a string, got a list (line 6)"],
        ),
        (
            "image: a\nports: ['80:abc']",
            [
                f'{S}.ports[0]: must be a port such as "8080", "80:8080" or '
                f"\"127.0.0.1:80:8080/udp\", got '80:abc' (line 6)"
            ],
        ),
        (
            "image: a\nports: ['0']",
            [f"{S}.ports[0]: 0 is not a port or an ascending range of ports (1-65535) (line 6)"],
        ),
        (
            "image: a\nports: ['70000']",
            [
                f"{S}.ports[0]: 70000 is not a port or an ascending range of ports (1-65535) "
                f"(line 6)"
            ],
        ),
        (
            "image: a\nports: ['8000-9000']",
            [f"{S}.ports[0]: the range 8000-9000 has more than 16 ports; list them (line 6)"],
        ),
        (
            "image: a\nports: ['8000-8001:9000']",
            [
                f"{S}.ports[0]: 8000-8001:9000: the published and target ranges differ in "
                f"length (line 6)"
            ],
        ),
        (
            "image: a\nports: ['80/sctp']",
            [f"{S}.ports[0]: protocol must be tcp or udp, got 'sctp' (line 6)"],
        ),
        (
            "image: a\nports: [{published: 80}]",
            [f"{S}.ports[0]: 'target' is required: the container port (line 6)"],
        ),
        (
            "image: a\nports: [{target: 80, publish: 8080}]",
            [f"{S}.ports[0].publish: unknown key 'publish'; did you mean 'published'? (line 6)"],
        ),
        (
            "image: a\nexpose: [http]",
            [f'{S}.expose[0]: must be a port such as "8080" or "8080/tcp", got \'http\' (line 6)'],
        ),
        (
            "image: a\nscale: 2\ndeploy: {replicas: 3}",
            [f"{S}.scale: can't set distinct values on 'scale' and 'deploy.replicas' (line 6)"],
        ),
        (
            "image: a\ndeploy: {replicas: -1}",
            [f"{S}.deploy.replicas: must be an integer of at least 0, got -1 (line 6)"],
        ),
        (
            "image: a\ndeploy: {replica: 2}",
            [f"{S}.deploy.replica: unknown key 'replica'; did you mean 'replicas'? (line 6)"],
        ),
        (
            "image: a\ndeploy: {resources: {limits: {cpus: '0'}}}",
            [
                f"{S}.deploy.resources.limits.cpus: must be a positive number of CPUs such as "
                f"\"0.5\", got '0' (line 6)"
            ],
        ),
        (
            "image: a\ndeploy: {resources: {limits: {memory: lots}}}",
            [
                f'{S}.deploy.resources.limits.memory: must be a memory size such as "512m" or '
                f"\"1g\", got 'lots' (line 6)"
            ],
        ),
        (
            "image: a\ndeploy: {resources: {limit: {}}}",
            [f"{S}.deploy.resources.limit: unknown key 'limit'; did you mean 'limits'? (line 6)"],
        ),
        (
            "image: a\nhealthcheck: {test: [CMD, x], interval: 10}",
            [
                f'{S}.healthcheck.interval: must be a duration such as "10s", "1m30s" or '
                f'"500ms", got 10 (line 6)'
            ],
        ),
        (
            "image: a\nhealthcheck: {test: [CMD, x], timeout: 5 s}",
            [
                f'{S}.healthcheck.timeout: must be a duration such as "10s", "1m30s" or '
                f"\"500ms\", got '5 s' (line 6)"
            ],
        ),
        (
            "image: a\nhealthcheck: {test: [RUN, x]}",
            [
                f"{S}.healthcheck.test: must start with CMD, CMD-SHELL or NONE and name a "
                f"command, got ['RUN', 'x'] (line 6)"
            ],
        ),
        (
            "image: a\nhealthcheck: {test: [CMD]}",
            [
                f"{S}.healthcheck.test: must start with CMD, CMD-SHELL or NONE and name a "
                f"command, got ['CMD'] (line 6)"
            ],
        ),
        (
            "image: a\nhealthcheck: {test: [CMD, x], retry: 3}",
            [f"{S}.healthcheck.retry: unknown key 'retry'; did you mean 'retries'? (line 6)"],
        ),
        (
            "image: a\nvolumes: ['missing:/data']",
            [f'{S}.volumes[0]: service "app" refers to undefined volume missing (line 6)'],
        ),
        (
            "image: a\nvolumes: ['data:relative']",
            [
                f"{S}.volumes[0]: must be SOURCE:/container/path[:ro], e.g. "
                f"\"data:/var/lib/data\", got 'data:relative' (line 6)"
            ],
        ),
        (
            "image: a\nvolumes: [{type: disk, source: data, target: /d}]",
            [
                f"{S}.volumes[0].type: must be volume, bind, tmpfs, npipe, cluster or image, "
                f"got 'disk' (line 6)"
            ],
        ),
        (
            "image: a\nvolumes: [{type: volume, target: /d}]",
            [f"{S}.volumes[0].source: must be a non-empty string, got null (line 6)"],
        ),
        (
            "image: a\nports: [[80]]",
            [f'{S}.ports[0]: must be a port such as "8080:80" or a mapping, got a list (line 6)'],
        ),
        (
            "image: a\nports: [{target: 70000}]",
            [f"{S}.ports[0].target: must be a port number (1-65535), got 70000 (line 6)"],
        ),
        (
            "image: a\nvolumes: [5]",
            [f'{S}.volumes[0]: must be a volume such as "data:/var/lib/data", got 5 (line 6)'],
        ),
        (
            "image: a\nhealthcheck: {test: []}",
            [
                f"{S}.healthcheck.test: must be a command such as "
                '["CMD", "curl", "-f", "http://localhost"], got a list (line 6)'
            ],
        ),
        (
            "image: a\nmem_limit: '0'",
            [f"{S}.mem_limit: must be a positive memory size, got '0' (line 6)"],
        ),
        (
            "image: a\ncpus: many",
            [f"{S}.cpus: must be a positive number of CPUs such as \"0.5\", got 'many' (line 6)"],
        ),
        (
            "image: a\nuser: [1]",
            [f'{S}.user: must be a user such as "1000" or "1000:1000", got a list (line 6)'],
        ),
        (
            "image: a\nprivileged: yes",
            [f"{S}.privileged: must be true or false, got 'yes' (line 6)"],
        ),
        (
            "image: a\ncap_add: NET_ADMIN",
            [f"{S}.cap_add: must be a list, got 'NET_ADMIN' (line 6)"],
        ),
    ],
    ids=lambda value: value.replace("\n", " ")[:60] if isinstance(value, str) else None,
)
def test_service_problems(body: str, expected: list[str]) -> None:
    assert messages(body) == expected


IGNORED = "no meaning on Kubernetes; ignored"
P = "services.app"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "image: a\ncontainer_name: x\nrestart: always\nnetworks: [n]\ndepends_on: "
            "[db]\nuse_api_socket: true",
            (
                Warning(f"{P}.container_name", IGNORED),
                Warning(f"{P}.restart", IGNORED),
                Warning(f"{P}.networks", IGNORED),
                Warning(f"{P}.depends_on", IGNORED),
                Warning(f"{P}.use_api_socket", IGNORED),
            ),
        ),
        (
            "image: a\nlogging: {driver: none}\nstop_grace_period: 1m\nprofiles: [dev]",
            (
                Warning(f"{P}.logging", IGNORED),
                Warning(f"{P}.stop_grace_period", IGNORED),
                Warning(f"{P}.profiles", IGNORED),
            ),
        ),
        (
            "image: a\nbuild: .",
            (Warning(f"{P}.build", "the image is pulled on Kubernetes, not built; ignored"),),
        ),
        ("build: .", ()),
        (
            "image: a\nenvironment: [A=1, B]",
            (
                Warning(
                    f"{P}.environment[1]",
                    "B has no value and is not in the interpolation environment; dropped",
                ),
            ),
        ),
        (
            "image: a\nenvironment: {B: null}",
            (
                Warning(
                    f"{P}.environment.B",
                    "B has no value and is not in the interpolation environment; dropped",
                ),
            ),
        ),
        (
            "image: a\nports: ['127.0.0.1:80:80']",
            (Warning(f"{P}.ports[0]", "host IP 127.0.0.1 has no meaning on Kubernetes; ignored"),),
        ),
        ("image: a\nports: [{target: 80, mode: host}]", (Warning(f"{P}.ports[0].mode", IGNORED),)),
        (
            "image: a\nvolumes: [{type: tmpfs, target: /tmp}]",
            (Warning(f"{P}.volumes[0]", "a tmpfs mount has no meaning on Kubernetes; ignored"),),
        ),
        (
            "image: a\nvolumes: ['/anonymous']",
            (
                Warning(
                    f"{P}.volumes[0]", "an anonymous volume keeps nothing on Kubernetes; ignored"
                ),
            ),
        ),
        (
            "image: a\nnetwork_mode: bridge",
            (
                Warning(
                    f"{P}.network_mode",
                    "network_mode: bridge has no meaning on Kubernetes; ignored",
                ),
            ),
        ),
        (
            "image: a\ndeploy: {mode: replicated, restart_policy: {condition: any}}",
            (Warning(f"{P}.deploy.mode", IGNORED), Warning(f"{P}.deploy.restart_policy", IGNORED)),
        ),
        (
            "image: a\ndeploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}",
            (
                Warning(
                    f"{P}.deploy.resources.reservations.devices[0]",
                    "count: all reserves one GPU on Kubernetes; give a number for more",
                ),
            ),
        ),
        (
            "image: a\ndeploy: {resources: {reservations: {devices: [{capabilities: [tpu], "
            "count: 1}]}}}",
            (
                Warning(
                    f"{P}.deploy.resources.reservations.devices[0]",
                    "only GPU device reservations have a meaning on Kubernetes; ignored",
                ),
            ),
        ),
        (
            "image: a\nhealthcheck: {test: [CMD, x], start_interval: 1s}",
            (Warning(f"{P}.healthcheck.start_interval", IGNORED),),
        ),
        (
            "image: a\nvolumes: [{type: volume, source: data, target: /d, consistency: cached}]",
            (Warning(f"{P}.volumes[0].consistency", IGNORED),),
        ),
        (
            "image: a\ndeploy: {resources: {limits: {pids: 100}}}",
            (Warning(f"{P}.deploy.resources.limits.pids", IGNORED),),
        ),
        (
            "image: a\nhealthcheck: {interval: 5s}",
            (
                Warning(
                    f"{P}.healthcheck",
                    "without 'test' Compose keeps the image's check, which Kubernetes does not "
                    "run; ignored",
                ),
            ),
        ),
    ],
    ids=lambda value: value.replace("\n", " ")[:60] if isinstance(value, str) else None,
)
def test_service_warnings(body: str, expected: tuple[Warning, ...]) -> None:
    assert warnings(body) == expected


def test_gpu_device_ids_count_gpus_with_a_warning() -> None:
    result = project(
        "image: a\ndeploy: {resources: {reservations: {devices: [{capabilities: [gpu], "
        "device_ids: ['0', '3']}]}}}"
    )
    assert (result.services["app"].resources.gpus, result.warnings) == (
        2,
        (
            Warning(
                f"{P}.deploy.resources.reservations.devices[0].device_ids",
                "Kubernetes picks the GPUs; only their number is kept",
            ),
        ),
    )


@pytest.mark.parametrize(
    ("memory", "quantity"),
    [
        ("512m", "512Mi"),
        ("1g", "1Gi"),
        ("1.5GB", "1536Mi"),
        ("1024k", "1Mi"),
        ("100kb", "100Ki"),
        ("2t", "2Ti"),
        ("1000", "1000"),
        ("1536", "1536"),
        ("2048b", "2Ki"),
        ("0.5k", "512"),
        ("1.0001k", "1025"),
        ("1073741824", "1Gi"),
        ("3MiB", "3Mi"),
    ],
)
def test_memory_sizes_become_binary_quantities(memory: str, quantity: str) -> None:
    assert service(f"image: a\nmem_limit: '{memory}'").resources.memory_limit == quantity


@pytest.mark.parametrize(
    ("cpus", "quantity"),
    [
        ("0.5", "500m"),
        ("2", "2"),
        ("1.25", "1250m"),
        ("0.0001", "1m"),
        ("4.0", "4"),
        ("0.333", "333m"),
    ],
)
def test_cpus_become_millicores(cpus: str, quantity: str) -> None:
    assert service(f"image: a\ncpus: '{cpus}'").resources.cpu_limit == quantity


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("10s", 10),
        ("1m30s", 90),
        ("500ms", 1),
        ("1.5s", 2),
        ("2h", 7200),
        ("0", 0),
        ("1500us", 1),
        ("3s999ms", 4),
    ],
)
def test_durations_round_up_to_seconds(duration: str, seconds: int) -> None:
    check = service(
        f"image: a\nhealthcheck: {{test: [CMD, x], start_period: '{duration}'}}"
    ).healthcheck
    assert check is not None and check.start_period_seconds == seconds


def test_a_service_must_be_a_mapping_and_well_named() -> None:
    with pytest.raises(ComposeError) as caught:
        load_project("services:\n  app:\n  'bad name': {image: a}\n  ok: [image]\n")
    assert caught.value.messages == [
        "compose.yaml: services.app: must be a mapping, got null (line 2)",
        "compose.yaml: services.bad name: a service name may hold only letters, digits, '.', "
        "'_' and '-' (line 3)",
        "compose.yaml: services.ok: must be a mapping, got a list (line 4)",
    ]


@pytest.mark.parametrize(
    ("environment", "missing_path"),
    [
        ("[A=1, TOKEN, MISSING]", f"{P}.environment[2]"),
        ("{A: 1, TOKEN: null, MISSING: null}", f"{P}.environment.MISSING"),
    ],
    ids=["list", "map"],
)
def test_a_name_without_value_takes_it_from_the_interpolation_environment(
    environment: str, missing_path: str
) -> None:
    text = f"services:\n  app:\n    image: a\n    environment: {environment}\n"
    result = load_project(text, environment={"TOKEN": "s3cret", "OTHER": "x"})
    assert (result.services["app"].environment, result.warnings) == (
        {"A": "1", "TOKEN": "s3cret"},
        (
            Warning(
                missing_path,
                "MISSING has no value and is not in the interpolation environment; dropped",
            ),
        ),
    )


def test_x_kubernetes_places_the_services_pods() -> None:
    app = service(
        """\
        image: app:1
        x-kubernetes:
          nodeSelector: {type: real, zone: 1}
          tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
        """
    )
    assert app.node_selector == {"type": "real", "zone": "1"}
    assert app.tolerations == (
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "image: a\nx-kubernetes: {nodeSelector: [a]}",
            "services.app.x-kubernetes.nodeSelector: must be a mapping, got a list (line 6)",
        ),
        (
            "image: a\nx-kubernetes: {tolerations: [{keys: a}]}",
            "services.app.x-kubernetes.tolerations[0].keys: unknown key 'keys'; "
            "did you mean 'key'? (line 6)",
        ),
        (
            "image: a\nx-kubernetes: {engine: vllm}",
            "services.app.x-kubernetes.engine: unknown key 'engine' (line 6)",
        ),
        (
            "image: a\nx-kubernetes: [a]",
            "services.app.x-kubernetes: must be a mapping, got a list (line 6)",
        ),
    ],
)
def test_x_kubernetes_problems_are_located(body: str, expected: str) -> None:
    assert messages(body) == [f"compose.yaml: {expected}"]
