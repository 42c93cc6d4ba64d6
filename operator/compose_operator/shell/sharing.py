"""The sharing index: which apps offer which models, which want them, and who is bound where.

Fed from every ComposeApp body kopf sees (an index handler, which kopf runs for the whole
initial listing before any other handler, so the index is complete on start-up) and from
every reconcile (which also knows offers read through `composeFrom`). Bindings are read from
the apps' status (`models[].source`), so they survive a restart of the operator.

Each update returns the apps it affects, and only those are re-reconciled:
- an app whose offers changed: every app that wants one of the old or new references, and
  every app bound to it;
- an app whose bindings changed: the offering apps on both sides (their served counts);
- an offered model becoming ready or not (its app's status): the apps bound to it; and
  being applied for the first time: every app that wants it (they wait for that, so no
  env ever names a Service that does not exist yet).

Everything here runs on the event loop; reconciles read a snapshot (`view`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from compose_operator.errors import ComposeError
from compose_operator.plan import OfferRef
from compose_operator.render.sharing import (
    Offer,
    bindings_in_status,
    offers_of,
    wanted_references,
)
from compose_operator.settings import Settings
from compose_operator.shell.reconcile import Core, Sharing

Key = tuple[str, str]


@dataclass(frozen=True)
class AppEntry:
    offers: tuple[Offer, ...] = ()
    wants: frozenset[str] = frozenset()
    bound: Mapping[str, OfferRef] = field(default_factory=dict)
    """Model key → the offer it is bound to."""
    unready: Mapping[str, str] = field(default_factory=dict)
    """Offered model key → why it is not serving (from the app's status); absent: ready."""


@dataclass(frozen=True)
class Totals:
    offers: int
    bound_apps: int
    bindings: int
    gpu_deployments_avoided: int


NOT_REPORTED = "not reconciled yet"


def unready_in_status(status: Mapping[str, Any], offers: tuple[Offer, ...]) -> dict[str, str]:
    """Why each offered model is not serving, as its app's status says."""
    entries = {
        str(entry.get("name", "")): entry
        for entry in status.get("models", []) or []
        if isinstance(entry, Mapping)
    }
    found: dict[str, str] = {}
    for offer in offers:
        entry = entries.get(offer.key)
        if entry is None:
            found[offer.key] = NOT_REPORTED
        elif entry.get("message"):
            found[offer.key] = str(entry["message"])
    return found


def holds_no_binding(body: Mapping[str, Any]) -> bool:
    """A suspended app, or one whose Compose file is invalid, releases its bindings: an offer
    it was bound to may go (its deletion does not wait), and its next valid plan binds anew."""
    if (body.get("spec", {}) or {}).get("suspend"):
        return True
    conditions = (body.get("status", {}) or {}).get("conditions", []) or []
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("reason") == "InvalidCompose"
        for c in conditions
    )


class SharingIndex:
    def __init__(self, core: Core, settings: Settings) -> None:
        self.core = core
        self.settings = settings
        self.apps: dict[Key, AppEntry] = {}
        self._parsed: dict[Key, tuple[Any, tuple[Offer, ...], frozenset[str]]] = {}

    def observe(self, key: Key, body: Mapping[str, Any]) -> set[Key]:
        """A ComposeApp as kopf delivers it (listing, change, deletion under way)."""
        old = self.apps.get(key, AppEntry())
        offers, wants = self._parse(key, body)
        if offers is None or wants is None:  # composeFrom: the reconcile will say
            offers, wants = old.offers, old.wants
        if body.get("metadata", {}).get("deletionTimestamp"):
            offers = ()  # an offer being deleted is withdrawn at once
        status = body.get("status", {}) or {}
        bound = {} if holds_no_binding(body) else bindings_in_status(status)
        unready = unready_in_status(status, offers)
        return self._update(key, AppEntry(offers, wants, bound, unready))

    def learn(
        self,
        key: Key,
        *,
        offers: tuple[Offer, ...] | None,
        wants: frozenset[str] | None,
        bound: Mapping[str, OfferRef] | None,
    ) -> set[Key]:
        """What a reconcile found (None: it did not get that far)."""
        old = self.apps.get(key, AppEntry())
        return self._update(
            key,
            AppEntry(
                old.offers if offers is None else offers,
                old.wants if wants is None else wants,
                old.bound if bound is None else dict(bound),
                old.unready,
            ),
        )

    def forget(self, key: Key) -> set[Key]:
        self._parsed.pop(key, None)
        return self._update(key, None)

    def view(self, key: Key) -> Sharing:
        """Every offer, and the apps bound to each offer of this app."""
        offers = tuple(
            replace(offer, available=entry.unready.get(offer.key) != NOT_REPORTED)
            for entry in self.apps.values()
            for offer in entry.offers
        )
        # By the offers apps are bound to, not by the offers listed now: an offer being
        # deleted is withdrawn at once, yet it serves its bound apps until they moved.
        served: dict[str, list[Key]] = {
            offer.key: [] for offer in self.apps.get(key, AppEntry()).offers
        }
        for other, entry in sorted(self.apps.items()):
            for ref in sorted(set(entry.bound.values())):
                if (ref.namespace, ref.app) == key and other != key:
                    served.setdefault(ref.model, []).append(other)
        unready = {
            offer.ref: why
            for entry in self.apps.values()
            for offer in entry.offers
            if (why := entry.unready.get(offer.key))
        }
        return Sharing(
            offers=offers,
            served={model: tuple(apps) for model, apps in served.items()},
            unready=unready,
        )

    def apps_to_check_in(self, namespace: str) -> set[Key]:
        """Apps in `namespace` whose matches may depend on its labels (a selector offer)."""
        selected = {o.reference for e in self.apps.values() for o in e.offers if o.uses_selector}
        return {
            key
            for key, entry in self.apps.items()
            if key[0] == namespace and entry.wants & selected
        }

    def totals(self) -> Totals:
        offers = {o.ref: o for entry in self.apps.values() for o in entry.offers}
        bindings = [ref for entry in self.apps.values() for ref in entry.bound.values()]
        return Totals(
            offers=len(offers),
            bound_apps=sum(1 for entry in self.apps.values() if entry.bound),
            bindings=len(bindings),
            gpu_deployments_avoided=sum(
                1 for ref in bindings if ref in offers and offers[ref].gpus > 0
            ),
        )

    def parse(self, key: Key, spec: Mapping[str, Any], generation: Any) -> None:
        """Load the app's Compose text into the cache `observe` reads. Costly for a large
        file, so the handler runs it in a worker thread, off the event loop."""
        stamp = (generation, spec.get("compose"))
        cached = self._parsed.get(key)
        if cached is not None and cached[0] == stamp:
            return
        try:
            project = self.core.load_project(
                spec["compose"], file="spec.compose", environment=spec.get("environment", {})
            )
        except ComposeError:
            offers: tuple[Offer, ...] = ()
            wants: frozenset[str] = frozenset()
        else:
            offers = offers_of(project, app=key[1], namespace=key[0], settings=self.settings)
            wants = wanted_references(project)
        self._parsed[key] = (stamp, offers, wants)

    def _parse(
        self, key: Key, body: Mapping[str, Any]
    ) -> tuple[tuple[Offer, ...] | None, frozenset[str] | None]:
        spec = body.get("spec", {}) or {}
        if "compose" not in spec:
            return None, None
        generation = body.get("metadata", {}).get("generation")
        self.parse(key, spec, generation)  # a cache hit when the handler parsed it already
        _, offers, wants = self._parsed[key]
        return offers, wants

    def _update(self, key: Key, new: AppEntry | None) -> set[Key]:
        old = self.apps.get(key, AppEntry())
        if new is None:
            self.apps.pop(key, None)
            new = AppEntry()
        else:
            self.apps[key] = new
        affected: set[Key] = set()
        if old.offers != new.offers:
            references = {o.reference for o in (*old.offers, *new.offers)}
            refs = {o.ref for o in old.offers}
            affected |= {
                other
                for other, entry in self.apps.items()
                if entry.wants & references or refs & set(entry.bound.values())
            }
        if old.unready != new.unready:
            refs = {o.ref for o in new.offers}
            affected |= {
                other for other, entry in self.apps.items() if refs & set(entry.bound.values())
            }
            applied = {
                o.reference
                for o in new.offers
                if (old.unready.get(o.key) == NOT_REPORTED)
                != (new.unready.get(o.key) == NOT_REPORTED)
            }
            affected |= {other for other, entry in self.apps.items() if entry.wants & applied}
        if old.bound != new.bound:
            affected |= _offering_apps({*old.bound.values(), *new.bound.values()})
        affected.discard(key)
        return affected


def _offering_apps(refs: Iterable[OfferRef]) -> set[Key]:
    return {(ref.namespace, ref.app) for ref in refs}
