use std::num::NonZeroU32;
use std::str::FromStr;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::{Sequence, Transaction};

/// Transactions on one history page.
pub const PAGE_SIZE: u32 = 10;

/// A 1-based history page number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PageNumber(NonZeroU32);

/// Why a text is not a [`PageNumber`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("page must be a whole number from 1 to {max}, not {0:?}", max = u32::MAX)]
pub struct PageNumberError(pub String);

impl PageNumber {
    /// The first page.
    pub const FIRST: Self = Self(NonZeroU32::MIN);

    /// Parses a page number written in decimal digits.
    pub fn parse(text: &str) -> Result<Self, PageNumberError> {
        let invalid = || PageNumberError(text.to_owned());
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        NonZeroU32::from_str(text).map(Self).map_err(|_| invalid())
    }

    /// A page number from its value; `None` for 0.
    pub fn new(number: u32) -> Option<Self> {
        NonZeroU32::new(number).map(Self)
    }

    /// The page number.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// How many transactions come before this page.
    pub fn offset(self) -> u64 {
        u64::from(self.0.get() - 1) * u64::from(PAGE_SIZE)
    }

    /// The page after this one, if it can be numbered.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

/// The times a history is read between: `from` inclusive, `to` exclusive, either or both open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// A range whose start is not before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "from ({}) must be before to ({})",
    from.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    to.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
)]
pub struct InvalidTimeRange {
    /// The start asked for.
    pub from: DateTime<Utc>,
    /// The end asked for.
    pub to: DateTime<Utc>,
}

impl TimeRange {
    /// Every transaction.
    pub const ALL: Self = Self { from: None, to: None };

    /// The transactions recorded at `from` or later and before `to`.
    pub fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Self, InvalidTimeRange> {
        match (from, to) {
            (Some(from), Some(to)) if from >= to => Err(InvalidTimeRange { from, to }),
            _ => Ok(Self { from, to }),
        }
    }

    /// The start, as asked for.
    pub fn from(&self) -> Option<DateTime<Utc>> {
        self.from
    }

    /// The end, as asked for.
    pub fn to(&self) -> Option<DateTime<Utc>> {
        self.to
    }

    /// The first recording time in the range at the microsecond precision of recording times.
    pub fn first_microsecond(&self) -> Option<DateTime<Utc>> {
        self.from.map(round_up_to_microseconds)
    }

    /// The first recording time past the range at the microsecond precision of recording times.
    pub fn end_microsecond(&self) -> Option<DateTime<Utc>> {
        self.to.map(round_up_to_microseconds)
    }

    /// Whether a transaction recorded at `time` is in the range.
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| time >= from) && self.to.is_none_or(|to| time < to)
    }
}

/// Recording times are whole microseconds: a time between two of them is, for `>=` and `<`, the later one.
fn round_up_to_microseconds(time: DateTime<Utc>) -> DateTime<Utc> {
    let truncated = time.trunc_subsecs(6);
    if truncated == time { time } else { truncated + TimeDelta::microseconds(1) }
}

/// Where a keyset page starts: the transactions before sequence `before`, numbered as page `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    /// The number of the page this cursor opens.
    pub page: PageNumber,
    /// The sequence of the last transaction of the previous page.
    pub before: Sequence,
}

/// Which history page to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRequest {
    /// Numbered pages: page N starts `(N - 1) × 10` transactions below the newest of the range.
    Page(PageNumber),
    /// Keyset pages: the page that follows a cursor.
    After(HistoryCursor),
}

impl HistoryRequest {
    /// The number of the page this request reads.
    pub fn page_number(self) -> PageNumber {
        match self {
            Self::Page(page) => page,
            Self::After(cursor) => cursor.page,
        }
    }
}

/// A history page to read: which page of which times. Either way its cost does not grow with the
/// length of the history, since sequences have no gaps and recording times never go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The times to read between.
    pub range: TimeRange,
    /// The page of them.
    pub request: HistoryRequest,
}

impl From<HistoryRequest> for HistoryQuery {
    fn from(request: HistoryRequest) -> Self {
        Self { range: TimeRange::ALL, request }
    }
}

/// One page of a user's transactions, newest first, as a store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// At most [`PAGE_SIZE`] transactions, newest first.
    pub transactions: Vec<Transaction>,
    /// The sequence of the last transaction on this page when older ones in the range exist; `None` on
    /// the last page.
    pub continues_before: Option<Sequence>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("RFC 3339").to_utc()
    }

    #[test]
    fn page_numbers_are_whole_numbers_from_one() {
        assert_eq!(PageNumber::parse("1").map(PageNumber::get), Ok(1));
        assert_eq!(PageNumber::parse("4294967295").map(PageNumber::get), Ok(u32::MAX));
        for bad in ["0", "-1", "1.5", "", "abc", "+2", " 1", "4294967296"] {
            assert_eq!(PageNumber::parse(bad), Err(PageNumberError(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn page_offsets_skip_ten_per_page() {
        assert_eq!(PageNumber::FIRST.offset(), 0);
        assert_eq!(PageNumber::parse("3").map(PageNumber::offset), Ok(20));
        assert_eq!(PageNumber::parse("4294967295").map(PageNumber::next), Ok(None));
    }

    #[test]
    fn a_range_starts_before_it_ends() {
        let (early, late) = (time("2026-12-01T00:00:00Z"), time("2026-12-02T00:00:00+01:00"));
        assert!(TimeRange::new(Some(early), Some(late)).is_ok());
        assert_eq!(TimeRange::new(Some(late), Some(early)), Err(InvalidTimeRange { from: late, to: early }));
        assert_eq!(TimeRange::new(Some(early), Some(early)), Err(InvalidTimeRange { from: early, to: early }));
        assert!(TimeRange::new(None, Some(early)).is_ok() && TimeRange::new(Some(late), None).is_ok());
    }

    #[test]
    fn a_range_holds_its_start_but_not_its_end() {
        let range =
            TimeRange::new(Some(time("2026-12-01T00:00:00Z")), Some(time("2026-12-01T00:00:01Z"))).expect("a range");
        assert!(range.contains(time("2026-12-01T00:00:00Z")));
        assert!(range.contains(time("2026-12-01T00:00:00.999999Z")));
        assert!(!range.contains(time("2026-12-01T00:00:01Z")));
        assert!(!range.contains(time("2026-11-30T23:59:59.999999Z")));
    }

    #[test]
    fn bounds_between_microseconds_round_to_the_next_one() {
        let range = TimeRange::new(Some(time("2026-12-01T00:00:00.0000001Z")), Some(time("2026-12-01T00:00:01Z")))
            .expect("a range");
        assert_eq!(range.first_microsecond(), Some(time("2026-12-01T00:00:00.000001Z")));
        assert_eq!(range.end_microsecond(), Some(time("2026-12-01T00:00:01Z")));
    }
}
