//! The TPC-H tables as the generator sees them: each column's type and the
//! values it holds (so that literals select some rows), and the foreign
//! keys that joins and correlated subqueries follow.

/// A column's SQL type, as far as the generator tells types apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Int,
    /// `DECIMAL(15, 2)`, and decimals computed from it.
    Dec,
    Float,
    Str,
    Date,
}

/// The values a column holds.
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    /// Integers in `lo..=hi`.
    Ints(i64, i64),
    /// Decimals with two places in `lo..=hi` (in hundredths).
    Cents(i64, i64),
    /// One of these strings.
    Words(&'static [&'static str]),
    /// Free text: matched with `LIKE` patterns of these fragments.
    Text(&'static [&'static str]),
    /// Days from 1992-01-01 to 1998-12-31.
    Days,
    /// Whatever an expression computes: compared with small numbers.
    Any,
}

/// A column of a table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: Ty,
    pub domain: Domain,
}

/// A TPC-H table.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
}

/// A foreign key: `from.columns` reference `to.columns`.
#[derive(Debug)]
pub struct Key {
    pub from: &'static str,
    pub to: &'static str,
    pub columns: &'static [(&'static str, &'static str)],
}

const fn col(name: &'static str, ty: Ty, domain: Domain) -> Column {
    Column { name, ty, domain }
}

const NATIONS: &[&str] = &[
    "ALGERIA",
    "BRAZIL",
    "CANADA",
    "FRANCE",
    "GERMANY",
    "INDIA",
    "JAPAN",
    "PERU",
    "UNITED STATES",
];
const FLAGS: &[&str] = &["A", "N", "R"];
const SEGMENTS: &[&str] = &[
    "AUTOMOBILE",
    "BUILDING",
    "FURNITURE",
    "HOUSEHOLD",
    "MACHINERY",
];
const PRIORITIES: &[&str] = &["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"];
const SHIPMODES: &[&str] = &["AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"];
const WORDS: &[&str] = &[
    "a", "e", "the", "ly", "fur", "pack", "#0", "1", "green", "ing",
];

pub const TABLES: &[Table] = &[
    Table {
        name: "lineitem",
        columns: &[
            col("l_orderkey", Ty::Int, Domain::Ints(1, 60_000)),
            col("l_partkey", Ty::Int, Domain::Ints(1, 2_000)),
            col("l_suppkey", Ty::Int, Domain::Ints(1, 100)),
            col("l_linenumber", Ty::Int, Domain::Ints(1, 7)),
            col("l_quantity", Ty::Dec, Domain::Cents(100, 5_000)),
            col(
                "l_extendedprice",
                Ty::Dec,
                Domain::Cents(90_000, 10_000_000),
            ),
            col("l_discount", Ty::Dec, Domain::Cents(0, 10)),
            col("l_tax", Ty::Dec, Domain::Cents(0, 8)),
            col("l_returnflag", Ty::Str, Domain::Words(FLAGS)),
            col("l_linestatus", Ty::Str, Domain::Words(&["F", "O"])),
            col("l_shipdate", Ty::Date, Domain::Days),
            col("l_commitdate", Ty::Date, Domain::Days),
            col("l_receiptdate", Ty::Date, Domain::Days),
            col("l_shipmode", Ty::Str, Domain::Words(SHIPMODES)),
            col("l_comment", Ty::Str, Domain::Text(WORDS)),
        ],
    },
    Table {
        name: "orders",
        columns: &[
            col("o_orderkey", Ty::Int, Domain::Ints(1, 60_000)),
            col("o_custkey", Ty::Int, Domain::Ints(1, 1_500)),
            col("o_orderstatus", Ty::Str, Domain::Words(&["F", "O", "P"])),
            col("o_totalprice", Ty::Dec, Domain::Cents(100_000, 50_000_000)),
            col("o_orderdate", Ty::Date, Domain::Days),
            col("o_orderpriority", Ty::Str, Domain::Words(PRIORITIES)),
            col(
                "o_clerk",
                Ty::Str,
                Domain::Text(&["Clerk#0000000", "1", "5"]),
            ),
            col("o_shippriority", Ty::Int, Domain::Ints(0, 1)),
            col("o_comment", Ty::Str, Domain::Text(WORDS)),
        ],
    },
    Table {
        name: "customer",
        columns: &[
            col("c_custkey", Ty::Int, Domain::Ints(1, 1_500)),
            col("c_name", Ty::Str, Domain::Text(&["Customer#", "1", "00"])),
            col("c_nationkey", Ty::Int, Domain::Ints(0, 24)),
            col("c_phone", Ty::Str, Domain::Text(&["1", "2", "-"])),
            col("c_acctbal", Ty::Dec, Domain::Cents(-99_999, 999_999)),
            col("c_mktsegment", Ty::Str, Domain::Words(SEGMENTS)),
            col("c_comment", Ty::Str, Domain::Text(WORDS)),
        ],
    },
    Table {
        name: "part",
        columns: &[
            col("p_partkey", Ty::Int, Domain::Ints(1, 2_000)),
            col(
                "p_name",
                Ty::Str,
                Domain::Text(&["green", "blue", "almond", "lace"]),
            ),
            col(
                "p_mfgr",
                Ty::Str,
                Domain::Words(&["Manufacturer#1", "Manufacturer#3"]),
            ),
            col(
                "p_brand",
                Ty::Str,
                Domain::Words(&["Brand#12", "Brand#23", "Brand#34"]),
            ),
            col(
                "p_type",
                Ty::Str,
                Domain::Text(&["PROMO", "BRASS", "STEEL", "ECONOMY"]),
            ),
            col("p_size", Ty::Int, Domain::Ints(1, 50)),
            col(
                "p_container",
                Ty::Str,
                Domain::Words(&["SM CASE", "LG BOX", "MED BAG"]),
            ),
            col("p_retailprice", Ty::Dec, Domain::Cents(90_000, 210_000)),
        ],
    },
    Table {
        name: "partsupp",
        columns: &[
            col("ps_partkey", Ty::Int, Domain::Ints(1, 2_000)),
            col("ps_suppkey", Ty::Int, Domain::Ints(1, 100)),
            col("ps_availqty", Ty::Int, Domain::Ints(1, 9_999)),
            col("ps_supplycost", Ty::Dec, Domain::Cents(100, 100_000)),
        ],
    },
    Table {
        name: "supplier",
        columns: &[
            col("s_suppkey", Ty::Int, Domain::Ints(1, 100)),
            col("s_name", Ty::Str, Domain::Text(&["Supplier#", "1", "0"])),
            col("s_nationkey", Ty::Int, Domain::Ints(0, 24)),
            col("s_acctbal", Ty::Dec, Domain::Cents(-99_999, 999_999)),
            col("s_comment", Ty::Str, Domain::Text(WORDS)),
        ],
    },
    Table {
        name: "nation",
        columns: &[
            col("n_nationkey", Ty::Int, Domain::Ints(0, 24)),
            col("n_name", Ty::Str, Domain::Words(NATIONS)),
            col("n_regionkey", Ty::Int, Domain::Ints(0, 4)),
        ],
    },
    Table {
        name: "region",
        columns: &[
            col("r_regionkey", Ty::Int, Domain::Ints(0, 4)),
            col(
                "r_name",
                Ty::Str,
                Domain::Words(&["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]),
            ),
        ],
    },
];

pub const KEYS: &[Key] = &[
    Key {
        from: "lineitem",
        to: "orders",
        columns: &[("l_orderkey", "o_orderkey")],
    },
    Key {
        from: "lineitem",
        to: "part",
        columns: &[("l_partkey", "p_partkey")],
    },
    Key {
        from: "lineitem",
        to: "supplier",
        columns: &[("l_suppkey", "s_suppkey")],
    },
    Key {
        from: "lineitem",
        to: "partsupp",
        columns: &[("l_partkey", "ps_partkey"), ("l_suppkey", "ps_suppkey")],
    },
    Key {
        from: "orders",
        to: "customer",
        columns: &[("o_custkey", "c_custkey")],
    },
    Key {
        from: "customer",
        to: "nation",
        columns: &[("c_nationkey", "n_nationkey")],
    },
    Key {
        from: "supplier",
        to: "nation",
        columns: &[("s_nationkey", "n_nationkey")],
    },
    Key {
        from: "nation",
        to: "region",
        columns: &[("n_regionkey", "r_regionkey")],
    },
    Key {
        from: "partsupp",
        to: "part",
        columns: &[("ps_partkey", "p_partkey")],
    },
    Key {
        from: "partsupp",
        to: "supplier",
        columns: &[("ps_suppkey", "s_suppkey")],
    },
];

/// The table named `name`.
pub fn table(name: &str) -> &'static Table {
    TABLES
        .iter()
        .find(|t| t.name == name)
        .expect("a TPC-H table")
}
