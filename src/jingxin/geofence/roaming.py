"""Roaming arrivals seen live in the location feed, welcomed with the journeys' roaming pack.

A cell the cell table lacks (off grid) is placed here:

* ``ROAM-XX`` (the synthetic feed's abroad cells) - country ``XX``;
* a CGI ``MCC-MNC-LAC-CI`` whose MCC is not China's - the MCC's country
  (``networks.yaml``, or ``[geofence] networks_path``);
* a CGI with MCC 460 whose id starts with a prefix of the provinces file (CSV ``prefix,
  province``, ``[geofence] provinces_path``; longest prefix wins) - that province, named as
  a domestic destination of the knowledge table by its ``match`` prefixes as the daily
  trigger names districts, else by itself (its welcome then skipped ``no_knowledge``);
* anything else is unplaced (the runner counts it ``unknown_cell``).

Per subscriber the detector keeps two packed arrays (directory-aligned): the last place
away from home (int16 code, -1 never) and when last seen there (uint32 epoch seconds).
An arrival is an event in a place away from home that differs from that last place, or
in the same place after ``quiet_days`` without an event there - the daily roaming
trigger's rule (:mod:`jingxin.journeys.triggers.roaming`), so a commuter across a
border is not welcomed every morning.

Welcomes go through the delivery entry as the journeys' own: source ``journey``, source
id ``roaming:<day>``, idempotency key :func:`jingxin.journeys.scan.journey_key`
(``roaming``, the local day, the number): the daily scan and the live path answer each
other ``duplicate``, and a subscriber gets one welcome a day whichever comes first.

The state is saved beside the matcher's checkpoint (:meth:`RoamingDetector.save`,
sparse: only subscribers ever seen away, by number, so a new directory loses nothing).
It is saved before the matcher's checkpoint, so after a crash it is never older than
the events the matcher replays (a replayed arrival is not an arrival again; its welcome
had been delivered before the save).
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from jingxin.errors import ConfigError, InputError
from jingxin.geofence.state import atomic_savez

if TYPE_CHECKING:
    from jingxin.data.store.engine import Store
    from jingxin.data.warehouse.connection import Warehouse
    from jingxin.dispatch.deliver import DeliveryContext
    from jingxin.geofence.directory import Directory
    from jingxin.geofence.types import EventBatch
    from jingxin.journeys.knowledge import Knowledge

__all__ = ["Arrivals", "RoamingDetector", "load_networks", "load_provinces", "salutations"]

log = logging.getLogger(__name__)

HOME, UNPLACED, NEVER = 0, -1, -1  # place codes (0: home; codes > 0 index ``places``)
HOME_COUNTRY = "CN"
SALUTATIONS = ("尊敬的客户", "尊敬的先生", "尊敬的女士")  # int8 codes of :func:`salutations`
_ROAM = re.compile(r"^ROAM-([A-Z]{2})$")
_CGI = re.compile(r"^([0-9]{3})-[0-9]{2,3}-[0-9]+-[0-9]+$")
_MCC = re.compile(r"^[0-9]{3}$")
_ISO2 = re.compile(r"^[A-Z]{2}$")


def load_networks(path: str | Path | None = None) -> dict[int, str]:
    """MCC -> ISO 3166 alpha-2 (the packaged table, or ``path``); a bad file is a
    ConfigError naming it and the entry."""
    import yaml

    from jingxin.data.textfile import read_text, yaml_problem

    if path is None:
        source = "jingxin.geofence/networks.yaml"
        text = importlib.resources.files("jingxin.geofence").joinpath("networks.yaml").read_text(
            "utf-8")
    else:
        source = str(path)
        try:
            text = read_text(path, what="networks file")
        except InputError as exc:
            raise ConfigError(str(exc)) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(exc, source=source)) from exc
    entries = raw.get("networks") if isinstance(raw, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{source}: expected 'networks:' mapping MCCs to country codes")
    out = {}
    for mcc, country in entries.items():
        if not _MCC.match(str(mcc)) or not _ISO2.match(str(country)):
            raise ConfigError(f"{source}: networks.{mcc}: expected a 3-digit MCC and an ISO "
                              f"3166 alpha-2 code (JP), got {mcc!r}: {country!r}")  # fmt: skip
        out[int(mcc)] = str(country)
    return out


def load_provinces(path: str | Path | None) -> tuple[tuple[str, str], ...]:
    """(prefix, province) rows of the provinces CSV, longest prefix first; () without one.
    A bad row is an InputError naming the file, line and field."""
    from jingxin.data.textfile import read_text

    if path is None:
        return ()
    text = read_text(path, what="provinces file")
    rows = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or (line == 1 and [c.strip().lower() for c in row[:2]] == ["prefix",
                                                                              "province"]):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            field = "prefix" if not row or not row[0].strip() else "province"
            raise InputError(f"{path}: line {line}: field {field!r}: empty (rows are "
                             "prefix,province)")  # fmt: skip
        rows.append((row[0].strip(), row[1].strip()))
    return tuple(sorted(rows, key=lambda r: -len(r[0])))


def salutations(warehouse: Warehouse, directory: Directory) -> np.ndarray:
    """How each directory subscriber is addressed (int8 index into SALUTATIONS), by the
    same rule as the daily roaming trigger (:func:`~jingxin.journeys.triggers.lifecycle.
    salutation`); built once at start."""
    import pyarrow.compute as pc

    from jingxin.journeys.triggers.lifecycle import salutation

    subs = warehouse.table("subscribers")
    table = subs.select("subscriber_id", name=salutation(subs.gender)).to_pyarrow()
    codes = np.zeros(len(directory), np.int8)
    positions = directory.positions_of_ids(table.column("subscriber_id").to_numpy())
    name = table.column("name")
    code = np.zeros(len(positions), np.int8)
    for i, text in enumerate(SALUTATIONS[1:], start=1):
        code[pc.equal(name, text).to_numpy(zero_copy_only=False)] = i
    known = positions >= 0
    codes[positions[known]] = code[known]
    return codes


@dataclass
class Arrivals:
    """Arrivals of one round: directory position, destination code, when (epoch ms)."""

    sub: np.ndarray
    destination: list[str]
    at_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.sub)

    @staticmethod
    def empty() -> Arrivals:
        return Arrivals(np.empty(0, np.int32), [], np.empty(0, np.int64))


class RoamingDetector:
    """Places off-grid events and finds arrivals (module docstring)."""

    def __init__(self, size: int, networks: Mapping[int, str],
                 provinces: Sequence[tuple[str, str]], knowledge: Knowledge,
                 quiet_days: int = 7, *, salutation_codes: np.ndarray | None = None,
                 utc_offset_seconds: int = 8 * 3600) -> None:  # fmt: skip
        self.networks = dict(networks)
        self.provinces = tuple(sorted(provinces, key=lambda r: -len(r[0])))
        self.knowledge = knowledge
        self.quiet_seconds = int(quiet_days) * 86400
        self.utc_offset_seconds = utc_offset_seconds
        self.salutation_codes = salutation_codes
        self.away_place = np.full(size, NEVER, np.int16)
        self.away_seen = np.zeros(size, np.uint32)
        self.places: list[str] = [HOME_COUNTRY]  # code 0: home
        self._code: dict[str, int] = {HOME_COUNTRY: HOME}
        self._cells: dict[str, int] = {}  # off-grid cell id -> place code, learnt once each

    @classmethod
    def from_settings(cls, settings: Any, size: int, *,
                      salutation_codes: np.ndarray | None = None) -> RoamingDetector:  # fmt: skip
        from jingxin.geofence.offers import utc_offset_seconds
        from jingxin.journeys.knowledge import load_knowledge

        geofence = settings.geofence
        offset = utc_offset_seconds(settings.policy.default_timezone)
        return cls(size, load_networks(geofence.networks_path),
                   load_provinces(geofence.provinces_path),
                   load_knowledge(settings.journeys.knowledge_path), geofence.roaming_quiet_days,
                   salutation_codes=salutation_codes, utc_offset_seconds=offset)  # fmt: skip

    # ------------------------------------------------------------------ placing cells

    def place_of(self, cell: str | None) -> int:
        """The place code of an off-grid cell id: HOME, UNPLACED or a destination's code."""
        if cell is None:
            return UNPLACED
        code = self._cells.get(cell)
        if code is None:
            code = self._cells[cell] = self._classify(cell)
        return code

    def _classify(self, cell: str) -> int:
        roam = _ROAM.match(cell)
        if roam is not None:
            return self._place(roam[1])
        cgi = _CGI.match(cell)
        if cgi is None:
            return UNPLACED
        country = self.networks.get(int(cgi[1]))
        if country is None:
            return UNPLACED
        if country != HOME_COUNTRY:
            return self._place(country)
        province = next((name for prefix, name in self.provinces if cell.startswith(prefix)),
                        None)  # fmt: skip
        return UNPLACED if province is None else self._place(self._destination(province))

    def _destination(self, province: str) -> str:
        for destination in self.knowledge.domestic:
            if any(province.startswith(prefix) for prefix in destination.match):
                return destination.code
        return province

    def _place(self, name: str) -> int:
        code = self._code.get(name)
        if code is None:
            if len(self.places) >= np.iinfo(np.int16).max:
                return UNPLACED
            code = self._code[name] = len(self.places)
            self.places.append(name)
        return code

    def classify(self, cells: Any) -> np.ndarray:
        """Place codes (int16) of off-grid cell ids (a list or an Arrow string array), each
        distinct id looked at once."""
        arr = cells if isinstance(cells, pa.Array | pa.ChunkedArray) else pa.array(
            list(cells), pa.string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        encoded = arr if pa.types.is_dictionary(arr.type) else arr.dictionary_encode()
        mapped = np.array([self.place_of(c) for c in encoded.dictionary.to_pylist()] + [UNPLACED],
                          dtype=np.int16)  # fmt: skip
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return mapped[codes]

    # ------------------------------------------------------------------ arrivals

    def observe(self, batch: EventBatch, cell_idx: np.ndarray,
                sub_idx: np.ndarray) -> tuple[Arrivals, np.ndarray]:  # fmt: skip
        """The arrivals in ``batch`` (one per subscriber and local day: the last) and the
        mask of its events no one could place (off grid, not home, not a destination)."""
        n = len(batch)
        place = np.zeros(n, np.int16)
        off = np.flatnonzero(np.asarray(cell_idx) < 0)
        if len(off):
            cells = batch.cell
            picked = cells.take(pa.array(off)) if isinstance(
                cells, pa.Array | pa.ChunkedArray) else [cells[i] for i in off]
            place[off] = self.classify(picked)
        unplaced = place == UNPLACED
        sub_idx = np.asarray(sub_idx)
        seconds = np.asarray(batch.ts, np.int64) // 1000
        rows = np.flatnonzero((place > 0) & (sub_idx >= 0))
        # Older than the last event away already kept: out of order, ignored (the matcher
        # ignores it too).
        rows = rows[seconds[rows] >= self.away_seen[sub_idx[rows]]]
        if not len(rows):
            return Arrivals.empty(), unplaced
        order = rows[np.lexsort((seconds[rows], sub_idx[rows]))]
        return self._advance(sub_idx[order].astype(np.int64), place[order], seconds[order],
                             np.asarray(batch.ts, np.int64)[order]), unplaced  # fmt: skip

    def _advance(self, sub: np.ndarray, place: np.ndarray, seconds: np.ndarray,
                 ts: np.ndarray) -> Arrivals:  # fmt: skip
        """Arrivals among away events sorted by (subscriber, time); the state advanced."""
        first = np.ones(len(sub), bool)
        first[1:] = sub[1:] != sub[:-1]
        prev_place = np.empty_like(place)
        prev_place[1:] = place[:-1]
        prev_place[first] = self.away_place[sub[first]]
        prev_seen = np.empty_like(seconds)
        prev_seen[1:] = seconds[:-1]
        prev_seen[first] = self.away_seen[sub[first]]
        arrived = (place != prev_place) | (seconds - prev_seen >= self.quiet_seconds)
        last = np.ones(len(sub), bool)
        last[:-1] = ~first[1:]
        self.away_place[sub[last]] = place[last]
        self.away_seen[sub[last]] = seconds[last].astype(np.uint32)
        sub, place, ts = sub[arrived], place[arrived], ts[arrived]
        day = (ts // 1000 + self.utc_offset_seconds) // 86400
        keep = np.ones(len(sub), bool)  # the last arrival of each subscriber's day
        keep[:-1] = (sub[1:] != sub[:-1]) | (day[1:] != day[:-1])
        names = [self.places[c] for c in place[keep].tolist()]
        return Arrivals(sub[keep].astype(np.int32), names, ts[keep])

    # ------------------------------------------------------------------ welcomes

    def welcome(self, store: Store, context: DeliveryContext, settings: Any, arrivals: Arrivals,
                directory: Directory, *, now: datetime | None = None) -> Counter:  # fmt: skip
        """Deliver the roaming welcome to ``arrivals`` (module docstring); a Counter of
        outcomes (``queued``, ``duplicate``, ...), ``no_knowledge`` for destinations the
        knowledge table lacks. StoreError propagates."""
        from jingxin.data.store.models import utc_now
        from jingxin.geofence.offers import deliver_offers

        if not len(arrivals):
            return Counter()
        deliveries, counts = self._deliveries(store, context, settings, arrivals, directory,
                                              now=now or utc_now())  # fmt: skip
        counts.update(deliver_offers(store, context, deliveries, now=now))
        return counts

    def _deliveries(self, store: Store, context: DeliveryContext, settings: Any,
                    arrivals: Arrivals, directory: Directory, *,
                    now: datetime) -> tuple[list, Counter]:  # fmt: skip
        from jingxin.dispatch.deliver import Delivery
        from jingxin.geofence.types import msisdn_text
        from jingxin.journeys.scan import journey_key, wanted_at
        from jingxin.journeys.triggers.roaming import destination_packs

        counts: Counter = Counter()
        journeys = settings.journeys
        days = (arrivals.at_ms // 1000 + self.utc_offset_seconds) // 86400
        out = []
        for day_number in np.unique(days).tolist():
            day = date(1970, 1, 1) + timedelta(days=day_number)
            at = wanted_at(settings, day=day, now=now)
            rows = np.flatnonzero(days == day_number).tolist()
            codes = sorted({arrivals.destination[i] for i in rows})
            packs = {r["destination"]: r for r in destination_packs(
                self.knowledge, codes=codes, day=day, at=at).to_pylist()}  # fmt: skip
            for i in rows:
                pack = packs.get(arrivals.destination[i])
                if pack is None:
                    counts["no_knowledge"] += 1
                    continue
                sub = int(arrivals.sub[i])
                msisdn = msisdn_text(directory.msisdn[sub])
                name = SALUTATIONS[0 if self.salutation_codes is None
                                   else int(self.salutation_codes[sub])]  # fmt: skip
                variables = {k: v for k, v in pack.items()
                             if v is not None and k not in ("destination", "template")}
                out.append(Delivery(
                    msisdn=msisdn, source="journey", source_id=f"roaming:{day.isoformat()}",
                    idempotency_key=journey_key("roaming", day, msisdn),
                    category=_category(store, context, journeys.tenant, pack["template"]),
                    tenant_id=journeys.tenant, template=pack["template"],
                    variables={**variables, "name": name}, wanted_at=at,
                    sender=journeys.hall_number))  # fmt: skip
        return out, counts

    # ------------------------------------------------------------------ state

    def save(self, path: Path, directory: Directory) -> None:
        """The state (subscribers ever seen away, by number) to ``path``, atomically."""
        rows = np.flatnonzero(self.away_place >= 0)
        atomic_savez(path, msisdn=directory.msisdn[rows], place=self.away_place[rows],
                     seen=self.away_seen[rows],
                     places=np.array(self.places, dtype=str))  # fmt: skip

    def set_directory(self, old: Directory, new: Directory,
                      salutation_codes: np.ndarray | None = None) -> None:  # fmt: skip
        """The state re-indexed from ``old`` to ``new`` by number (a subscriber who left
        is dropped, a new one starts unseen)."""
        rows = np.flatnonzero(self.away_place >= 0)
        at = new.lookup(old.msisdn[rows])
        known = at >= 0
        place, seen = self.away_place[rows[known]], self.away_seen[rows[known]]
        self.away_place = np.full(len(new), NEVER, np.int16)
        self.away_seen = np.zeros(len(new), np.uint32)
        self.away_place[at[known]], self.away_seen[at[known]] = place, seen
        self.salutation_codes = salutation_codes

    def load(self, path: Path, directory: Directory) -> int:
        """The state saved at ``path`` (numbers the directory lacks dropped); returns the
        subscribers restored. A corrupt file is an InputError naming it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                msisdn, place = data["msisdn"].astype(np.int64), data["place"].astype(np.int16)
                seen, places = data["seen"].astype(np.uint32), [str(p) for p in data["places"]]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: not a roaming state file: {exc}") from exc
        if not places or places[0] != HOME_COUNTRY or len(place) != len(msisdn) or (
                len(place) and (place.min() < 0 or place.max() >= len(places))):  # fmt: skip
            raise InputError(f"{path}: roaming state is inconsistent (places table or codes)")
        self.places, self._cells = places, {}
        self._code = {name: i for i, name in enumerate(places)}
        self.away_place[:] = NEVER
        self.away_seen[:] = 0
        at = directory.lookup(msisdn)
        known = at >= 0
        self.away_place[at[known]] = place[known]
        self.away_seen[at[known]] = seen[known]
        return int(known.sum())


def _category(store: Store, context: DeliveryContext, tenant: str, template: str) -> str:
    """The approved template's category (a template not approved: the delivery entry
    refuses it, counted ``invalid``)."""
    try:
        return context.approved(store, tenant_id=tenant, code=template).category
    except InputError:
        return "notification"
