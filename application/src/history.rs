use domain::{HistoryCursor, HistoryPage, PAGE_SIZE, PageNumber, Transaction};

/// A history page as the caller sees it: its number, its transactions, and how to reach the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryView {
    /// The number of this page.
    pub page: PageNumber,
    /// How many transactions a full page holds.
    pub per_page: u32,
    /// Newest first.
    pub transactions: Vec<Transaction>,
    /// `None` on the last page.
    pub next: Option<NextPage>,
}

/// The two ways to ask for the page after this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextPage {
    /// Its number, for offset pagination.
    pub page: PageNumber,
    /// Its cursor, for keyset pagination.
    pub cursor: HistoryCursor,
}

impl HistoryView {
    pub(crate) fn new(page: PageNumber, stored: HistoryPage) -> Self {
        let next = stored.continues_before.and_then(|before| {
            let next_page = page.next()?;
            Some(NextPage { page: next_page, cursor: HistoryCursor { page: next_page, before } })
        });
        Self { page, per_page: PAGE_SIZE, transactions: stored.transactions, next }
    }
}
