"""Declared schema of the raw tables: columns, kinds, ranges, unique ids and foreign keys."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "str", "bool", "timestamp"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    unique: str | None = None  # id column that must be unique
    foreign_keys: dict[str, str] = field(default_factory=dict)  # column -> referenced table (its id)
    timestamp: str | None = None  # must not lie after the end of history (null is allowed if nullable)
    set_when: dict[str, str] = field(default_factory=dict)  # nullable column -> bool column: set iff true

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


CUSTOMERS = TableSchema("customers", (
    Column("customer_id", "int", min=1), Column("signup_ts", "timestamp"),
    Column("country", "str", nullable=True), Column("channel", "str", nullable=True),
    Column("age_band", "str", nullable=True),
), unique="customer_id", timestamp="signup_ts")

ORDERS = TableSchema("orders", (
    Column("order_id", "int", min=1), Column("customer_id", "int", min=1), Column("order_ts", "timestamp"),
    Column("amount", "float", min=0.0), Column("discount", "float", min=0.0, nullable=True),
    Column("category", "str", nullable=True), Column("n_items", "int", min=1, nullable=True),
), unique="order_id", foreign_keys={"customer_id": "customers"}, timestamp="order_ts")

PRODUCTS = TableSchema("products", (
    Column("product_id", "int", min=1), Column("category", "str"), Column("price", "float", min=0.0),
    Column("name", "str", nullable=True),
), unique="product_id")

# An order's lines: sum(quantity * unit_price * (1 - discount)) is the order's amount. A returned
# line keeps counting in orders.amount (spend is gross of returns); return_ts is null unless returned.
ORDER_LINES = TableSchema("order_lines", (
    Column("line_id", "int", min=1), Column("order_id", "int", min=1), Column("product_id", "int", min=1),
    Column("quantity", "int", min=1), Column("unit_price", "float", min=0.0),
    Column("discount", "float", min=0.0, max=1.0), Column("returned", "bool"),
    Column("return_ts", "timestamp", nullable=True),
), unique="line_id", foreign_keys={"order_id": "orders", "product_id": "products"}, timestamp="return_ts",
   set_when={"return_ts": "returned"})

EVENTS = TableSchema("events", (
    Column("event_id", "int", min=1), Column("session_id", "int", min=1), Column("customer_id", "int", min=1),
    Column("event_ts", "timestamp"),
    Column("event_type", "str", allowed=("view", "search", "add_to_cart", "remove_from_cart", "checkout")),
), unique="event_id", foreign_keys={"customer_id": "customers"}, timestamp="event_ts")

REVIEWS = TableSchema("reviews", (
    Column("review_id", "int", min=1), Column("order_id", "int", min=1), Column("customer_id", "int", min=1),
    Column("review_ts", "timestamp"), Column("rating", "int", min=1, max=5),
    Column("text", "str", nullable=True),
), unique="review_id", foreign_keys={"customer_id": "customers", "order_id": "orders"}, timestamp="review_ts")

# An imported log: one row per purchase line; customers and orders are derived from its clean rows.
TRANSACTIONS = TableSchema("transactions", (
    Column("customer_id", "int", min=0), Column("timestamp", "timestamp"), Column("amount", "float", min=0.0),
    Column("quantity", "int", min=1, nullable=True), Column("product", "str", nullable=True),
    Column("category", "str", nullable=True),
), timestamp="timestamp")

# Parents before children: validation checks foreign keys against the clean ids of earlier tables.
SCHEMAS: dict[str, TableSchema] = {
    s.name: s for s in (CUSTOMERS, PRODUCTS, ORDERS, ORDER_LINES, EVENTS, REVIEWS, TRANSACTIONS)
}
REQUIRED = (("customers", "orders"), ("transactions",))  # a dataset holds all tables of one of these
ID_COLUMN = {"customers": "customer_id", "products": "product_id", "orders": "order_id"}
