"""Consent and suppression from outside: a CRM's consent list (CSV, Parquet or SQL) into the store.

Why a module of its own: consent is a legal record, not a model input.  A shop's CRM owns it, so the
engine must take it in bulk (``recsys consent import``) and one by one (``POST /consent``,
``POST /unsubscribe``), keep *every* record for audit (``consent_history``), and decide by the record's
own time which one is current (latest ``ts`` wins, whatever order files arrive in: a re-import of last
month's export must not undo yesterday's unsubscribe).

An import is all or nothing.  Every row is checked first — a customer id, a known channel, a granted
flag, a timestamp that is not in the future — and every bad row is reported with its place (file,
line, column, value); then all rows go into the store in one transaction.  Rows of erased customers
are skipped (and counted): storing them would bring an erased id back.

Columns: ``customer_id``, ``channel`` (``email`` | ``sms`` | ``push``), ``granted`` (true/false,
1/0, yes/no, granted/denied, opt_in/opt_out), ``ts`` (ISO 8601 date or date-time; an offset is
converted to UTC), ``source`` (optional: default the file's name).  Extra columns are ignored and
named in the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys.exceptions import ConfigError, SchemaError
from recsys.store import Store

__all__ = [
    "CHANNELS",
    "CONSENT_COLUMNS",
    "BadRow",
    "ConsentImportError",
    "ImportReport",
    "contact_exclusions",
    "import_consent",
    "keep_reachable",
    "parse_granted",
    "read_consent",
    "validate_consent",
]

CHANNELS: tuple[str, ...] = ("email", "sms", "push")
CONSENT_COLUMNS: tuple[str, ...] = ("customer_id", "channel", "granted", "ts", "source")
_REQUIRED = ("customer_id", "channel", "granted", "ts")
_TRUE = {"true", "t", "1", "yes", "y", "granted", "opt_in", "optin", "subscribed"}
_FALSE = {"false", "f", "0", "no", "n", "denied", "opt_out", "optout", "unsubscribed", "withdrawn"}
#: A record may be this far ahead of the importing machine's clock (time zones, clock skew); beyond,
#: it is a typo that would win "latest" for ever.
FUTURE_SLACK = timedelta(days=1)
#: Bad rows listed in one error message (all are counted).
SHOWN = 20


@dataclass(frozen=True)
class BadRow:
    """One rejected value: where (``origin``, ``line N`` / ``row N``), which column, the value, the rule."""

    origin: str
    where: str
    column: str
    value: str
    rule: str

    def __str__(self) -> str:
        return f"{self.origin}, {self.where}, column {self.column}: {self.value!r} — {self.rule}"


class ConsentImportError(SchemaError):
    """Rows that break the consent schema; nothing was imported.  ``bad`` lists every one."""

    def __init__(self, origin: str, bad: list[BadRow], total: int) -> None:
        shown = "\n".join(f"  {b}" for b in bad[:SHOWN])
        more = f"\n  … and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        first = bad[0]
        super().__init__(f"{origin}: {len(bad)} bad value(s) in {total} row(s); nothing imported:\n{shown}{more}",
                         source=origin, column=first.column, count=len(bad))
        self.bad = bad


@dataclass
class ImportReport:
    """What an import did (or, with ``dry_run``, would do)."""

    origin: str
    rows: int
    written: int
    customers: int
    granted: int
    withdrawn: int
    skipped_erased: int
    batch: str
    ignored_columns: list[str] = field(default_factory=list)
    dry_run: bool = False


def parse_granted(value: Any) -> bool | None:
    """``True``/``False`` from the usual spellings of a consent flag; ``None`` when it is none of them."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def read_consent(source: str | Path, *, table: str | None = None,
                 query: str | None = None) -> tuple[pl.DataFrame, str, str, int]:
    """The raw rows of a consent file or database table: ``(frame, origin, unit, offset)``.

    ``source`` is a ``.csv``/``.csv.gz``/``.parquet`` file or a ``sqlite:///…``/``postgresql://…`` URI
    (then ``table`` or ``query``).  ``unit``/``offset`` turn a 1-based record number into the place a
    person finds it: CSV ``line`` (the header is line 1), Parquet and SQL ``row``.
    """
    from recsys.data._read import _read_file, connect, redact_uri

    text = str(source)
    if "://" in text:
        if (table is None) == (query is None):
            raise ConfigError(f"{redact_uri(text)}: give exactly one of --table or --query")
        origin = f"{redact_uri(text)}#{table or 'query'}"
        conn = connect(text)
        try:
            frame = pl.read_database(query or f'SELECT * FROM "{table}"', connection=conn, infer_schema_length=None)
        except Exception as exc:  # noqa: BLE001 - driver errors have no common base class
            raise SchemaError(f"{origin}: query failed: {exc}", source=origin) from None
        finally:
            conn.close()
        return frame, origin, "row", 0
    if table is not None or query is not None:
        raise ConfigError(f"{text}: --table/--query are for database URIs, not files")
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"consent file not found: {path}")
    try:
        frame, unit, offset = _read_file(path)
    except pl.exceptions.PolarsError as exc:
        raise SchemaError(f"{path}: cannot be read as a consent table: {exc}", source=str(path)) from None
    return frame, str(path), unit, offset


def _as_text(column: pl.Series) -> list[str | None]:
    return column.cast(pl.String).to_list()


def _timestamps(column: pl.Series) -> tuple[list[datetime | None], list[bool]]:
    """Naive-UTC times and a parse-failure flag per value (null values count as failures)."""
    if isinstance(column.dtype, pl.Datetime):
        if column.dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        values = column.cast(pl.Datetime("us")).to_list()
        return values, [v is None for v in values]
    if column.dtype == pl.Date:
        values = column.cast(pl.Datetime("us")).to_list()
        return values, [v is None for v in values]
    out: list[datetime | None] = []
    bad: list[bool] = []
    for raw in _as_text(column):
        try:
            ts = datetime.fromisoformat(raw.strip()) if raw is not None else None
        except ValueError:
            ts = None
        if ts is not None and ts.tzinfo is not None:
            try:
                ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
            except OverflowError:
                ts = None
        out.append(ts)
        bad.append(ts is None)
    return out, bad


def validate_consent(frame: pl.DataFrame, *, origin: str, unit: str = "row", offset: int = 0,
                     default_source: str | None = None, now: datetime | None = None) -> pl.DataFrame:
    """Typed records ``customer_id, channel, granted, ts, source`` from raw rows, or
    ``ConsentImportError`` listing every bad value (file, line/row, column, value, rule).

    Raises
    ------
    SchemaError
        A required column is missing (named with the columns found).
    ConsentImportError
        One or more bad values; nothing is returned, so nothing can be half-imported.
    """
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise SchemaError(f"{origin}: missing column(s) {', '.join(missing)} (columns: {', '.join(frame.columns)}; "
                          f"needed: {', '.join(CONSENT_COLUMNS)}, source optional)", source=origin,
                          column=missing[0])
    limit = (now or datetime.now(timezone.utc).replace(tzinfo=None)) + FUTURE_SLACK
    n = frame.height
    bad: list[BadRow] = []

    def where(i: int) -> str:
        return f"{unit} {i + 1 + offset}"

    ids = [None if v is None else v.strip() for v in _as_text(frame["customer_id"])]
    channels = [None if v is None else v.strip().lower() for v in _as_text(frame["channel"])]
    granted_raw = frame["granted"].to_list()
    granted = [parse_granted(v) if v is not None else None for v in granted_raw]
    times, ts_bad = _timestamps(frame["ts"])
    ts_text = _as_text(frame["ts"])
    sources = _as_text(frame["source"]) if "source" in frame.columns else [None] * n
    for i in range(n):
        cid = ids[i]
        if not cid:
            bad.append(BadRow(origin, where(i), "customer_id", str(cid or ""), "a customer id is required"))
        elif len(cid) > 64 or any(ord(ch) < 32 or ord(ch) == 127 for ch in cid):
            bad.append(BadRow(origin, where(i), "customer_id", cid[:80], "at most 64 characters, no control characters"))
        if channels[i] not in CHANNELS:
            bad.append(BadRow(origin, where(i), "channel", str(channels[i] or ""), f"one of {', '.join(CHANNELS)}"))
        if granted[i] is None:
            bad.append(BadRow(origin, where(i), "granted", str(granted_raw[i] if granted_raw[i] is not None else ""),
                              "true/false (also 1/0, yes/no, granted/denied, opt_in/opt_out)"))
        if ts_bad[i]:
            bad.append(BadRow(origin, where(i), "ts", str(ts_text[i] or ""),
                              "an ISO 8601 date or date-time (e.g. 2025-03-01T12:00:00Z)"))
        elif times[i] > limit:  # type: ignore[operator]
            bad.append(BadRow(origin, where(i), "ts", str(ts_text[i]), f"in the future (after {limit:%Y-%m-%d %H:%M} UTC)"))
    if bad:
        raise ConsentImportError(origin, bad, n)
    return pl.DataFrame(
        {"customer_id": ids, "channel": channels, "granted": granted, "ts": times,
         "source": [s if s else default_source for s in sources]},
        schema={"customer_id": pl.String, "channel": pl.String, "granted": pl.Boolean, "ts": pl.Datetime("us"),
                "source": pl.String},
    )


def import_consent(store: Store | None, source: str | Path, *, table: str | None = None,
                   query: str | None = None, source_name: str | None = None, dry_run: bool = False,
                   now: datetime | None = None) -> ImportReport:
    """Read, validate and store a consent list in one transaction (see the module docstring).

    ``source_name`` fills empty ``source`` values (default: the file name or ``uri#table``);
    ``dry_run`` validates and counts without writing (``store`` may then be ``None``).
    """
    frame, origin, unit, offset = read_consent(source, table=table, query=query)
    default = source_name or (Path(str(source)).name if "://" not in str(source) else origin)
    records = validate_consent(frame, origin=origin, unit=unit, offset=offset, default_source=default, now=now)
    erased = np.asarray(store.is_erased(records["customer_id"].to_list()), dtype=bool) \
        if store is not None and records.height else np.zeros(records.height, dtype=bool)
    kept = records.filter(pl.Series(~erased)) if erased.any() else records
    batch = f"import-{uuid.uuid4().hex[:12]}"
    written = 0
    if not dry_run and store is not None:
        written = store.record_consent(kept, batch=batch)
    return ImportReport(
        origin=origin, rows=records.height, written=written, customers=kept["customer_id"].n_unique(),
        granted=int(kept["granted"].sum()), withdrawn=int((~kept["granted"]).sum()),
        skipped_erased=int(erased.sum()), batch=batch,
        ignored_columns=[c for c in frame.columns if c not in CONSENT_COLUMNS], dry_run=dry_run,
    )


def contact_exclusions(customer_ids: Sequence[str], data: Any, store: Store | None) -> np.ndarray:
    """Per customer why they may not be mailed — ``consent``, ``suppression``, ``erased`` — or ``""``:
    the campaign run's own rules (``recsys.campaigns._pressure``) without the contact-pressure caps,
    for lists that are not campaigns (``recsys audience``)."""
    from recsys.campaigns._pressure import resolve_consent

    ids = list(customer_ids)
    reason = np.full(len(ids), "", dtype=object)
    reason[~resolve_consent(ids, data, store)] = "consent"
    if store is not None and ids:
        suppressed = store.suppressed()
        reason[(reason == "") & np.fromiter((c in suppressed for c in ids), dtype=bool, count=len(ids))] = \
            "suppression"
        reason[(reason == "") & np.asarray(store.is_erased(ids), dtype=bool)] = "erased"
    return reason


def keep_reachable(ranked: pl.DataFrame, data: Any, store: Store | None, *,
                   n: int | None = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """The rows of ``ranked`` (``customer_id``, best first) whose customer may be mailed, re-ranked
    (``rank`` 1…) and cut to ``n``; and how many were left out per reason (``contact_exclusions``)."""
    reason = contact_exclusions(ranked["customer_id"].to_list(), data, store)
    counts = {r: int((reason == r).sum()) for r in ("consent", "suppression", "erased")}
    kept = ranked.filter(pl.Series(reason == "", dtype=pl.Boolean))
    if n is not None:
        kept = kept.head(n)
    if "rank" in kept.columns:
        kept = kept.with_columns(pl.int_range(1, pl.len() + 1).cast(kept["rank"].dtype).alias("rank"))
    return kept, counts
