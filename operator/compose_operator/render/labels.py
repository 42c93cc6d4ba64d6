"""The labels on every object: who manages it, which app it belongs to, and what selects it."""

from __future__ import annotations

from compose_operator import names

MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
APP = "compose-operator.io/app"
MODEL = "compose-operator.io/model"
SERVICE = "compose-operator.io/service"
COMPONENT = "compose-operator.io/component"
GATEWAY = "model-gateway"
OPERATOR = "compose-operator"

Labels = dict[str, str]


def common(app: str) -> Labels:
    value = names.label_value(app)
    return {MANAGED_BY: OPERATOR, PART_OF: value, APP: value}


def model_selector(app: str, key: str) -> Labels:
    return {APP: names.label_value(app), MODEL: names.label_value(key)}


def for_model(app: str, key: str) -> Labels:
    return {**common(app), **model_selector(app, key)}


def service_selector(app: str, name: str) -> Labels:
    return {APP: names.label_value(app), SERVICE: names.label_value(name)}


def for_service(app: str, name: str) -> Labels:
    return {**common(app), **service_selector(app, name)}


def gateway_selector(app: str) -> Labels:
    return {APP: names.label_value(app), COMPONENT: GATEWAY}


def for_gateway(app: str) -> Labels:
    return {**common(app), **gateway_selector(app)}
