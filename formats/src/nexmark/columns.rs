//! Nexmark events as Arrow columns: one builder set per kind of event, and
//! the combined stream, whose rows carry one event each in the struct
//! column of its kind (the others null).

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Int32Builder, Int64Builder, StringBuilder, StructArray,
    TimestampMillisecondBuilder, UInt32Array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::take;
use arrow::datatypes::{DataType, Fields};
use nexmark::event::{Auction, Bid, Event, Person};

use super::{NexmarkTable, table_schema};

/// The `event_type` of each kind in the combined stream (Flink's Nexmark
/// numbering).
const PERSON_TYPE: i32 = 0;
/// See [`PERSON_TYPE`].
const AUCTION_TYPE: i32 = 1;
/// See [`PERSON_TYPE`].
const BID_TYPE: i32 = 2;

fn int(n: usize) -> Int64Builder {
    Int64Builder::with_capacity(n)
}

fn text(n: usize) -> StringBuilder {
    StringBuilder::with_capacity(n, n * 16)
}

fn time(n: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(n)
}

fn done<B: ArrayBuilder>(mut builder: B) -> ArrayRef {
    builder.finish()
}

/// The columns of people.
pub(super) struct PersonColumns {
    id: Int64Builder,
    name: StringBuilder,
    email: StringBuilder,
    card: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

impl PersonColumns {
    fn new(n: usize) -> Self {
        Self {
            id: int(n),
            name: text(n),
            email: text(n),
            card: text(n),
            city: text(n),
            state: text(n),
            time: time(n),
            extra: text(n),
        }
    }

    fn push(&mut self, p: &Person) {
        self.id.append_value(p.id as i64);
        self.name.append_value(&p.name);
        self.email.append_value(&p.email_address);
        self.card.append_value(&p.credit_card);
        self.city.append_value(&p.city);
        self.state.append_value(&p.state);
        self.time.append_value(p.date_time as i64);
        self.extra.append_value(&p.extra);
    }

    fn finish(self) -> Vec<ArrayRef> {
        vec![
            done(self.id),
            done(self.name),
            done(self.email),
            done(self.card),
            done(self.city),
            done(self.state),
            done(self.time),
            done(self.extra),
        ]
    }
}

/// The columns of auctions.
pub(super) struct AuctionColumns {
    id: Int64Builder,
    item: StringBuilder,
    description: StringBuilder,
    initial_bid: Int64Builder,
    reserve: Int64Builder,
    time: TimestampMillisecondBuilder,
    expires: TimestampMillisecondBuilder,
    seller: Int64Builder,
    category: Int64Builder,
    extra: StringBuilder,
}

impl AuctionColumns {
    fn new(n: usize) -> Self {
        Self {
            id: int(n),
            item: text(n),
            description: text(n),
            initial_bid: int(n),
            reserve: int(n),
            time: time(n),
            expires: time(n),
            seller: int(n),
            category: int(n),
            extra: text(n),
        }
    }

    fn push(&mut self, a: &Auction) {
        self.id.append_value(a.id as i64);
        self.item.append_value(&a.item_name);
        self.description.append_value(&a.description);
        self.initial_bid.append_value(a.initial_bid as i64);
        self.reserve.append_value(a.reserve as i64);
        self.time.append_value(a.date_time as i64);
        self.expires.append_value(a.expires as i64);
        self.seller.append_value(a.seller as i64);
        self.category.append_value(a.category as i64);
        self.extra.append_value(&a.extra);
    }

    fn finish(self) -> Vec<ArrayRef> {
        vec![
            done(self.id),
            done(self.item),
            done(self.description),
            done(self.initial_bid),
            done(self.reserve),
            done(self.time),
            done(self.expires),
            done(self.seller),
            done(self.category),
            done(self.extra),
        ]
    }
}

/// The columns of bids.
pub(super) struct BidColumns {
    auction: Int64Builder,
    bidder: Int64Builder,
    price: Int64Builder,
    channel: StringBuilder,
    url: StringBuilder,
    time: TimestampMillisecondBuilder,
    extra: StringBuilder,
}

impl BidColumns {
    fn new(n: usize) -> Self {
        Self {
            auction: int(n),
            bidder: int(n),
            price: int(n),
            channel: text(n),
            url: text(n),
            time: time(n),
            extra: text(n),
        }
    }

    fn push(&mut self, b: &Bid) {
        self.auction.append_value(b.auction as i64);
        self.bidder.append_value(b.bidder as i64);
        self.price.append_value(b.price as i64);
        self.channel.append_value(&b.channel);
        self.url.append_value(&b.url);
        self.time.append_value(b.date_time as i64);
        self.extra.append_value(&b.extra);
    }

    fn finish(self) -> Vec<ArrayRef> {
        vec![
            done(self.auction),
            done(self.bidder),
            done(self.price),
            done(self.channel),
            done(self.url),
            done(self.time),
            done(self.extra),
        ]
    }
}

/// The combined stream's columns: `event_type`, a struct column per kind
/// (each event's kind's row of the others null) and `date_time`.
pub(super) struct CombinedColumns {
    event_type: Int32Builder,
    time: TimestampMillisecondBuilder,
    person: PersonColumns,
    auction: AuctionColumns,
    bid: BidColumns,
    /// Per kind, per row: the row among that kind's events, or `None`.
    rows: [Vec<Option<u32>>; 3],
}

impl CombinedColumns {
    fn push(&mut self, event: &Event) {
        let (kind, time) = match event {
            Event::Person(p) => {
                self.person.push(p);
                (PERSON_TYPE, p.date_time)
            }
            Event::Auction(a) => {
                self.auction.push(a);
                (AUCTION_TYPE, a.date_time)
            }
            Event::Bid(b) => {
                self.bid.push(b);
                (BID_TYPE, b.date_time)
            }
        };
        self.event_type.append_value(kind);
        self.time.append_value(time as i64);
        let kinds = [
            self.person.id.len(),
            self.auction.id.len(),
            self.bid.auction.len(),
        ];
        for (k, rows) in self.rows.iter_mut().enumerate() {
            // The builder of this event's kind holds it last.
            rows.push((k as i32 == kind).then(|| (kinds[k] - 1) as u32));
        }
    }

    fn finish(self) -> arrow::error::Result<Vec<ArrayRef>> {
        let schema = table_schema(NexmarkTable::Events);
        let [person, auction, bid] = self.rows;
        let spread = |index: usize, columns: Vec<ArrayRef>, rows: Vec<Option<u32>>| {
            let DataType::Struct(fields) = schema.field(index).data_type() else {
                unreachable!("the combined stream's kinds are structs");
            };
            struct_column(fields.clone(), columns, rows)
        };
        Ok(vec![
            done(self.event_type),
            spread(1, self.person.finish(), person)?,
            spread(2, self.auction.finish(), auction)?,
            spread(3, self.bid.finish(), bid)?,
            done(self.time),
        ])
    }
}

/// A struct column of `fields` whose row `i` is row `rows[i]` of
/// `columns`, or null.
fn struct_column(
    fields: Fields,
    columns: Vec<ArrayRef>,
    rows: Vec<Option<u32>>,
) -> arrow::error::Result<ArrayRef> {
    let nulls = NullBuffer::from_iter(rows.iter().map(Option::is_some));
    let indices = UInt32Array::from(rows);
    let children = columns
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<arrow::error::Result<Vec<_>>>()?;
    Ok(Arc::new(StructArray::try_new(
        fields,
        children,
        Some(nulls),
    )?))
}

/// Builders of every column of one table.
#[expect(
    clippy::large_enum_variant,
    reason = "one per batch, never moved in a loop"
)]
pub(super) enum EventColumns {
    Person(PersonColumns),
    Auction(AuctionColumns),
    Bid(BidColumns),
    Combined(CombinedColumns),
}

impl EventColumns {
    /// Builders for `n` events of `table`.
    pub(super) fn new(table: NexmarkTable, n: usize) -> Self {
        match table {
            NexmarkTable::Person => Self::Person(PersonColumns::new(n)),
            NexmarkTable::Auction => Self::Auction(AuctionColumns::new(n)),
            NexmarkTable::Bid => Self::Bid(BidColumns::new(n)),
            // Nexmark's proportions: 1 person and 3 auctions in 50 events.
            NexmarkTable::Events => Self::Combined(CombinedColumns {
                event_type: Int32Builder::with_capacity(n),
                time: time(n),
                person: PersonColumns::new(n / 50 + 1),
                auction: AuctionColumns::new(3 * n / 50 + 1),
                bid: BidColumns::new(n),
                rows: std::array::from_fn(|_| Vec::with_capacity(n)),
            }),
        }
    }

    /// Appends `event`; a table of one kind takes only events of its kind
    /// (the generator filters them).
    pub(super) fn push(&mut self, event: &Event) {
        match (self, event) {
            (Self::Person(columns), Event::Person(p)) => columns.push(p),
            (Self::Auction(columns), Event::Auction(a)) => columns.push(a),
            (Self::Bid(columns), Event::Bid(b)) => columns.push(b),
            (Self::Combined(columns), event) => columns.push(event),
            _ => {}
        }
    }

    /// Every column of the table.
    ///
    /// # Errors
    /// When Arrow refuses the combined stream's struct columns.
    pub(super) fn finish(self) -> arrow::error::Result<Vec<ArrayRef>> {
        Ok(match self {
            Self::Person(columns) => columns.finish(),
            Self::Auction(columns) => columns.finish(),
            Self::Bid(columns) => columns.finish(),
            Self::Combined(columns) => columns.finish()?,
        })
    }
}
