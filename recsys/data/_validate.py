"""Map source columns onto the canonical schema and validate every row, strictly or leniently.

Why strict by default: a recommender trained on silently mangled data fails quietly (wrong items,
wrong dates) and nobody finds out.  Every rule below is an error naming the source, the column, the
first offending row and how many rows are affected; ``lenient=True`` drops the rows instead and
records the same facts in a ``ValidationReport`` so the caller can print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from recsys.data._config import TableSpec
from recsys.data._read import ROW, RawTable
from recsys.exceptions import SchemaError
from recsys.schema import CUSTOMERS, EVENT_TYPES, INTERACTIONS, ITEMS, REQUIRED

__all__ = ["Issue", "ValidationReport", "Checker", "to_canonical"]

Table = Literal["interactions", "items", "customers"]
_SCHEMAS = {"interactions": INTERACTIONS, "items": ITEMS, "customers": CUSTOMERS}
_DEFAULT_TS_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")
_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")


@dataclass(frozen=True)
class Issue:
    """One broken rule: where, which column, how many rows, and the first one."""

    source: str
    column: str
    rule: str
    count: int
    first: str
    value: str | None = None

    def message(self) -> str:
        """The issue as one line naming the source, column, rule, row count and the first offending row."""
        rows = "row" if self.count == 1 else "rows"
        shown = "" if self.value is None else f" (value {self.value!r})"
        return f"{self.source}: column '{self.column}': {self.count} {rows} {self.rule}; first at {self.first}{shown}"


@dataclass
class ValidationReport:
    """What validation found; in lenient mode also what it dropped."""

    issues: list[Issue] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no rule was broken."""
        return not self.issues

    def lines(self) -> list[str]:
        """Issues, dropped-row counts and notes as printable lines."""
        out = [i.message() for i in self.issues]
        out += [f"dropped {n:,} {table} rows" for table, n in self.dropped.items() if n]
        return out + self.notes


class Checker:
    """Applies one rule at a time: raise on the first violation, or drop and record (lenient)."""

    def __init__(self, raw: RawTable, table: str, *, lenient: bool, report: ValidationReport) -> None:
        self.raw = raw
        self.table = table
        self.lenient = lenient
        self.report = report

    def fail(self, message: str, column: str | None = None) -> None:
        """A structural error no row-dropping can fix (missing column, empty input)."""
        raise SchemaError(f"{self.raw.origin}: {message}", source=self.raw.origin, column=column)

    def flag(self, frame: pl.DataFrame, bad: pl.Expr, column: str, rule: str, value_col: str) -> pl.DataFrame:
        """Rows where ``bad`` holds break ``rule``: raise (strict) or drop them (lenient)."""
        mask = frame.select(bad.fill_null(False).alias("m"))["m"]
        count = int(mask.sum())
        if count == 0:
            return frame
        first = frame.filter(mask).head(1)
        value = first[value_col][0] if value_col in first.columns else None
        issue = Issue(
            source=self.raw.origin,
            column=column,
            rule=rule,
            count=count,
            first=self.raw.where(int(first[ROW][0])),
            value=None if value is None else str(value),
        )
        if not self.lenient:
            raise SchemaError(
                issue.message(), source=issue.source, column=column, row=int(first[ROW][0]), count=count
            )
        self.report.issues.append(issue)
        self.report.dropped[self.table] = self.report.dropped.get(self.table, 0) + count
        return frame.filter(~mask)


def _parse_ts(col: pl.Expr, dtype: pl.DataType, fmt: str | None) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return col.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Date):
        return col.cast(pl.Datetime("us"))
    text = col.cast(pl.String).str.strip_chars()
    formats = (fmt,) if fmt else _DEFAULT_TS_FORMATS
    return pl.coalesce([text.str.to_datetime(f, strict=False, time_unit="us") for f in formats])


def _parse_bool(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return col
    if dtype.is_numeric():
        return col != 0
    text = col.cast(pl.String).str.strip_chars().str.to_lowercase()
    return (
        pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False).otherwise(None)
    )


def _source_name(spec: TableSpec, canonical: str) -> str:
    return spec.columns.get(canonical, canonical)


def to_canonical(raw: RawTable, spec: TableSpec, table: Table, check: Checker) -> pl.DataFrame:
    """Rename, parse and validate one raw table; returns canonical columns + free attributes + ROW."""
    frame = raw.frame
    schema = _SCHEMAS[table]
    if frame.height == 0:
        check.fail(f"{table} input is empty (0 rows)")
    for canonical, src in spec.columns.items():
        if src not in frame.columns:
            check.fail(
                f"missing column '{src}' (mapped to {table}.{canonical}); columns present: "
                + ", ".join(c for c in frame.columns if c != ROW),
                column=src,
            )
    for canonical in REQUIRED[table]:
        if _source_name(spec, canonical) not in frame.columns:
            check.fail(
                f"missing required column '{_source_name(spec, canonical)}' ({table}.{canonical}); "
                "columns present: " + ", ".join(c for c in frame.columns if c != ROW),
                column=_source_name(spec, canonical),
            )

    # Parsed copies under canonical names; the source columns stay for error messages.
    parsed: list[pl.Expr] = []
    present: dict[str, str] = {}
    for canonical, dtype in schema.items():
        src = _source_name(spec, canonical)
        if src not in frame.columns:
            continue
        present[canonical] = src
        col, src_dtype = pl.col(src), frame.schema[src]
        if isinstance(dtype, pl.Datetime):
            expr = _parse_ts(col, src_dtype, spec.ts_format if canonical == "ts" else None)
        elif dtype == pl.Boolean:
            expr = _parse_bool(col, src_dtype)
        elif dtype.is_numeric():
            expr = col.cast(pl.String).str.strip_chars().cast(dtype, strict=False) if src_dtype == pl.String \
                else col.cast(dtype, strict=False)
        else:
            expr = col.cast(pl.String).str.strip_chars()
            if canonical == "event":
                expr = expr.str.to_lowercase()
        parsed.append(expr.alias(f"__{canonical}"))
    frame = frame.with_columns(parsed)

    for canonical, src in present.items():
        p = pl.col(f"__{canonical}")
        dtype = schema[canonical]
        if canonical in REQUIRED[table] or canonical in ("item_id", "customer_id"):
            raw_src = pl.col(src)
            frame = check.flag(frame, raw_src.is_null() | (raw_src.cast(pl.String).str.strip_chars() == ""),
                               src, "with no value", src)
        if isinstance(dtype, pl.Datetime):
            frame = check.flag(frame, pl.col(src).is_not_null() & p.is_null(), src,
                               "with an unparseable date", src)
        elif dtype == pl.Boolean:
            frame = check.flag(frame, pl.col(src).is_not_null() & p.is_null(), src,
                               "with a value that is not a boolean (true/false/1/0/yes/no)", src)
        elif dtype.is_numeric():
            frame = check.flag(frame, pl.col(src).is_not_null() & (p.is_null() | p.is_nan()), src,
                               "with a value that is not a number", src)
            if canonical != "quantity":  # quantity has its own purchase rule with a dataset policy
                frame = check.flag(frame, p < 0, src, "with a negative value", src)
    if "event" in present:
        frame = check.flag(frame, ~pl.col("__event").is_in(EVENT_TYPES) & pl.col("__event").is_not_null(),
                           present["event"], f"with an unknown event type (allowed: {', '.join(EVENT_TYPES)})",
                           present["event"])

    out = frame.select(
        pl.col(ROW), *[pl.col(f"__{c}").alias(c) for c in present],
        *[pl.col(c) for c in frame.columns
          if c != ROW and not c.startswith("__") and c not in present.values() and table == "customers"],
    )
    if table == "interactions":
        out = _interaction_rules(out, spec, check, present)
    elif table == "items":
        out = check.flag(out, pl.col("item_id").is_duplicated() & (pl.col(ROW) != pl.col(ROW).min().over("item_id")),
                         present["item_id"], "with a duplicate item id", "item_id")
    else:
        out = check.flag(out, pl.col("customer_id").is_duplicated()
                         & (pl.col(ROW) != pl.col(ROW).min().over("customer_id")),
                         present["customer_id"], "with a duplicate customer id", "customer_id")
    return out


def _interaction_rules(out: pl.DataFrame, spec: TableSpec, check: Checker, present: dict[str, str]) -> pl.DataFrame:
    if "event" not in out.columns:
        out = out.with_columns(pl.lit("purchase").alias("event"))
    out = out.with_columns(pl.col("event").fill_null("purchase"))
    if "quantity" not in out.columns:
        out = out.with_columns(pl.lit(1.0, pl.Float32).alias("quantity"))
    out = out.with_columns(pl.col("quantity").fill_null(1.0))
    nonpos = (pl.col("event") == "purchase") & (pl.col("quantity") <= 0)
    qsrc = present.get("quantity", "quantity")
    if spec.nonpositive_quantity == "one":
        n = int(out.select(nonpos.sum()).item())
        if n:
            check.report.notes.append(
                f"{check.raw.origin}: {n:,} purchases with quantity ≤ 0 counted as quantity 1 (dataset policy)"
            )
        out = out.with_columns(pl.when(nonpos).then(1.0).otherwise(pl.col("quantity")).alias("quantity"))
    elif spec.nonpositive_quantity == "drop":
        n = int(out.select(nonpos.sum()).item())
        if n:
            check.report.notes.append(f"{check.raw.origin}: dropped {n:,} purchases with quantity ≤ 0 (dataset policy)")
            check.report.dropped["interactions"] = check.report.dropped.get("interactions", 0) + n
        out = out.filter(~nonpos)
    else:
        out = check.flag(out, nonpos, qsrc, "with a purchase of zero or negative quantity", "quantity")
    if spec.price_is_line_total and "price" in out.columns:
        out = out.with_columns((pl.col("price") / pl.col("quantity")).alias("price"))
    return out
