"""`compose-operator run`: flags, settings (exit 2 when invalid), log lines naming the app."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from compose_operator.settings import Settings
from compose_operator.shell import runner


def test_defaults_match_the_contract() -> None:
    args = runner.build_parser().parse_args([])
    assert (args.metrics_port, args.health_port, args.webhook_port) == (8080, 8081, 9443)
    assert args.namespace == [] and not args.all_namespaces
    assert args.webhook is False
    assert args.log_format == "plain"
    assert args.resync_seconds == 300


def test_flags() -> None:
    args = runner.build_parser().parse_args(
        [
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--webhook",
            "--webhook-host",
            "op.sys.svc",
            "--log-format",
            "json",
            "--resync-seconds",
            "30",
            "--settings",
            "s.yaml",
        ]
    )
    assert args.namespace == ["a", "b"]
    assert args.webhook and args.webhook_host == "op.sys.svc"
    assert (args.log_format, args.resync_seconds, args.settings) == ("json", 30, Path("s.yaml"))
    with pytest.raises(SystemExit):
        runner.build_parser().parse_args(["--namespace", "a", "--all-namespaces"])


def test_the_shared_webhook_certificate_comes_from_a_directory_or_a_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parse = runner.build_parser().parse_args
    args = parse(["--webhook-cert-secret", "ops/co-webhook-cert"])
    assert (args.webhook_cert_secret, args.webhook_cert_dir) == (("ops", "co-webhook-cert"), None)
    for wrong in (["--webhook-cert-secret", "co-webhook-cert"], ["--webhook-cert-secret", "a/b/c"]):
        with pytest.raises(SystemExit):
            parse(wrong)
        assert "expected NAMESPACE/NAME" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--webhook-cert-secret", "ops/c", "--webhook-cert-dir", "/certs"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_settings_path_prefers_the_flag_then_the_environment(tmp_path: Path) -> None:
    flag = tmp_path / "flag.yaml"
    assert runner.settings_path(flag, {runner.SETTINGS_ENV: "env.yaml"}) == flag
    assert runner.settings_path(None, {runner.SETTINGS_ENV: "env.yaml"}) == Path("env.yaml")


def test_no_settings_file_means_built_in_defaults() -> None:
    assert runner.read_settings(None) == Settings()


def test_invalid_settings_exit_2_with_located_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("defaultEngine: 42\nnoSuchKey: 1\n")
    assert runner.main(["--settings", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: ")
    assert "noSuchKey" in err


def test_a_missing_settings_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.yaml"
    assert runner.main(["--settings", str(missing)]) == 2
    assert capsys.readouterr().err == f"{missing}: No such file or directory\n"


def record(**extra: object) -> logging.LogRecord:
    item = logging.LogRecord(
        "compose_operator.reconcile", logging.INFO, "f", 1, "reconciled %s", ("x",), None
    )
    item.__dict__.update(extra)
    return item


@pytest.mark.parametrize(
    ("extra", "app"),
    [
        ({"app": "team/chat"}, "team/chat"),
        ({"k8s_ref": {"namespace": "team", "name": "chat"}}, "team/chat"),
        ({}, "-"),
    ],
)
def test_every_line_names_the_app(extra: dict[str, object], app: str) -> None:
    line = record(**extra)
    assert runner.AppField().filter(line)
    assert json.loads(runner.JsonFormatter().format(line)) == {
        "time": json.loads(runner.JsonFormatter().format(line))["time"],
        "level": "info",
        "logger": "compose_operator.reconcile",
        "app": app,
        "message": "reconciled x",
    }
