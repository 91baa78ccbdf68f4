use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use crate::Transaction;

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

/// Where a transaction stands in its user's history: later transactions have greater positions. A store
/// assigns positions; nothing but ordering may be read into them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LedgerPosition(i64);

impl LedgerPosition {
    /// A position as a store keeps it.
    pub fn new(position: i64) -> Self {
        Self(position)
    }

    /// The position as a store keeps it.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Where a keyset page starts: the transactions older than `before`, numbered as page `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    /// The number of the page this cursor opens.
    pub page: PageNumber,
    /// The position of the last transaction of the previous page.
    pub before: LedgerPosition,
}

/// A cursor text that this service did not issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the cursor {0:?} was not issued by this service; use the next_cursor of a history page")]
pub struct HistoryCursorError(pub String);

const CURSOR_PREFIX: &str = "c1-";

impl HistoryCursor {
    /// Reads a cursor written by its [`Display`](fmt::Display).
    pub fn parse(text: &str) -> Result<Self, HistoryCursorError> {
        let invalid = || HistoryCursorError(text.to_owned());
        let body = text.strip_prefix(CURSOR_PREFIX).ok_or_else(invalid)?;
        let (page, before) = body.split_once('-').ok_or_else(invalid)?;
        let is_hex =
            |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !is_hex(page) || !is_hex(before) {
            return Err(invalid());
        }
        let page = u32::from_str_radix(page, 16).ok().and_then(NonZeroU32::new).ok_or_else(invalid)?;
        let before = i64::from_str_radix(before, 16).map_err(|_| invalid())?;
        let cursor = Self { page: PageNumber(page), before: LedgerPosition(before) };
        // Only the canonical spelling was issued: no leading zeros.
        if cursor.to_string() != text {
            return Err(invalid());
        }
        Ok(cursor)
    }
}

impl fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{CURSOR_PREFIX}{:x}-{:x}", self.page.get(), self.before.0)
    }
}

/// Which history page to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRequest {
    /// Offset pagination: skip `(page - 1) × 10` transactions. Cost grows with the page number.
    Page(PageNumber),
    /// Keyset pagination: the page that follows a cursor. Cost does not grow with depth.
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

/// One page of a user's transactions, newest first, as a store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// At most [`PAGE_SIZE`] transactions, newest first.
    pub transactions: Vec<Transaction>,
    /// The position of the last transaction on this page when older ones exist; `None` on the last page.
    pub continues_before: Option<LedgerPosition>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cursors_round_trip() {
        let cursor =
            HistoryCursor { page: PageNumber::parse("7").expect("valid"), before: LedgerPosition::new(12_345) };
        assert_eq!(HistoryCursor::parse(&cursor.to_string()), Ok(cursor));
    }

    #[test]
    fn cursors_we_did_not_issue_are_refused() {
        for bad in [
            "", "abc", "c1-", "c1-1", "c1-0-5", "c1-01-5", "c1-1-05", "c1-A-5", "c1-1-x", "c2-1-5", "c1-1-5-6",
            "c1-1--5",
        ] {
            assert_eq!(HistoryCursor::parse(bad), Err(HistoryCursorError(bad.to_owned())), "{bad:?}");
        }
    }
}
