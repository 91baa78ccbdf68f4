//! Amounts are whole cents in the generator and decimal strings on the wire; never floats.

use rust_decimal::Decimal;

/// `1234` -> `"12.34"`, the wire form of an amount.
pub fn format_cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The exact decimal value of `cents`.
pub fn cents_to_decimal(cents: u64) -> Decimal {
    Decimal::from_i128_with_scale(i128::from(cents), 2)
}

/// A money string from the service, parsed exactly.
pub fn parse_money(text: &str) -> Option<Decimal> {
    Decimal::from_str_exact(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_format_with_exactly_two_decimals() {
        for (cents, text) in [
            (1, "0.01"),
            (10, "0.10"),
            (99, "0.99"),
            (100, "1.00"),
            (1234, "12.34"),
            (100_000_000_000, "1000000000.00"),
        ] {
            assert_eq!(format_cents(cents), text);
            assert_eq!(parse_money(text), Some(cents_to_decimal(cents)));
        }
    }

    #[test]
    fn decimal_sums_are_exact() {
        let sum: Decimal = [10, 20].into_iter().map(cents_to_decimal).sum();
        assert_eq!(sum, parse_money("0.30").expect("valid"));
        assert_eq!(parse_money("12.30"), parse_money("12.3"));
        assert_eq!(parse_money("not money"), None);
    }
}
