use std::fmt;

use rust_decimal::Decimal;

/// The largest amount one add may carry: 1,000,000,000.00 USD.
pub const MAX_AMOUNT: Decimal = cents_constant(MAX_AMOUNT_CENTS.unsigned_abs());
/// The largest balance a user may hold: 1,000,000,000,000.00 USD (10^12).
pub const MAX_BALANCE: Decimal = cents_constant(100_000_000_000_000);

const MAX_AMOUNT_CENTS: i64 = 100_000_000_000;

/// A number of cents as a decimal with two places, usable in a constant (`Decimal::new` is not `const`).
#[allow(clippy::cast_possible_truncation, reason = "the low and the middle 32 bits of the 96-bit mantissa")]
const fn cents_constant(cents: u64) -> Decimal {
    Decimal::from_parts(cents as u32, (cents >> 32) as u32, 0, false, 2)
}
/// Digits before the point that an amount can never need: 10^10 is already above [`MAX_AMOUNT`].
const AMOUNT_INTEGER_DIGITS_LIMIT: i64 = 10;
/// Cents are the smallest unit of USD.
const CENT_DECIMALS: i64 = 2;

/// A positive amount of USD with at most two decimals, at most [`MAX_AMOUNT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Amount(Decimal);

/// Why a text or number is not an [`Amount`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount {0:?} is not a decimal number such as 500 or 12.34")]
    NotANumber(String),
    #[error("the amount must be greater than 0")]
    NotPositive,
    #[error("the amount has more than 2 decimal places; a cent (0.01) is the smallest unit")]
    TooManyDecimals,
    #[error("the amount is above 1000000000.00, the most that one add may carry")]
    TooLarge,
}

impl Amount {
    /// Parses decimal notation exactly, never through a float: `500`, `12.5`, `0.01`, and the exponent
    /// form JSON numbers may take (`1.5e2`). Trailing zeros do not count as decimals (`1.500` is 1.50).
    pub fn parse(text: &str) -> Result<Self, AmountError> {
        let not_a_number = || AmountError::NotANumber(text.to_owned());
        let DecimalText { negative, digits, point } = DecimalText::parse(text).ok_or_else(not_a_number)?;
        if digits.is_empty() || negative {
            return Err(AmountError::NotPositive);
        }
        let decimals = i64::try_from(digits.len()).map_err(|_| AmountError::TooManyDecimals)? - point;
        if decimals > CENT_DECIMALS {
            return Err(AmountError::TooManyDecimals);
        }
        if point > AMOUNT_INTEGER_DIGITS_LIMIT {
            return Err(AmountError::TooLarge);
        }
        // At most 12 significant digits remain here (10 before the point, 2 after), so i64 holds them.
        let significant: i64 = digits.parse().map_err(|_| not_a_number())?;
        let cents = significant * 10_i64.pow(u32::try_from(CENT_DECIMALS - decimals).map_err(|_| not_a_number())?);
        Self::from_cents(cents)
    }

    /// An amount from a whole number of cents.
    pub fn from_cents(cents: i64) -> Result<Self, AmountError> {
        match cents {
            ..=0 => Err(AmountError::NotPositive),
            1..=MAX_AMOUNT_CENTS => Ok(Self(Decimal::new(cents, 2))),
            _ => Err(AmountError::TooLarge),
        }
    }

    /// An amount from a decimal, as a store gives it back.
    pub fn from_decimal(value: Decimal) -> Result<Self, AmountError> {
        let mut normalized = value.normalize();
        if normalized.is_sign_negative() || normalized.is_zero() {
            return Err(AmountError::NotPositive);
        }
        if normalized.scale() > 2 {
            return Err(AmountError::TooManyDecimals);
        }
        if normalized > MAX_AMOUNT {
            return Err(AmountError::TooLarge);
        }
        normalized.rescale(2);
        Ok(Self(normalized))
    }

    /// The exact value, with two decimals.
    pub fn as_decimal(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

/// What a user holds: from 0 to [`MAX_BALANCE`] USD, in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Balance(Decimal);

/// An add that would take a balance past [`MAX_BALANCE`]; nothing is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("adding {amount} to the balance of {balance} would pass the limit of 1000000000000.00")]
pub struct BalanceLimitExceeded {
    /// The balance before the refused add.
    pub balance: Balance,
    /// The refused amount.
    pub amount: Amount,
}

/// Why a stored value is not a [`Balance`]; only a corrupt store can produce one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a balance: a balance is 0 to 1000000000000.00 with at most 2 decimals")]
pub struct InvalidBalance(pub Decimal);

impl Balance {
    /// The balance of a user the ledger has never seen.
    pub const ZERO: Self = Self(cents_constant(0));

    /// A balance from a decimal, as a store gives it back.
    pub fn from_decimal(value: Decimal) -> Result<Self, InvalidBalance> {
        let mut normalized = value.normalize();
        if normalized.scale() > 2 || normalized.is_sign_negative() || normalized > MAX_BALANCE {
            return Err(InvalidBalance(value));
        }
        normalized.rescale(2);
        Ok(Self(normalized))
    }

    /// The ledger's one rule for money coming in: the balance grows by exactly the amount and never passes
    /// [`MAX_BALANCE`].
    pub fn credit(self, amount: Amount) -> Result<Self, BalanceLimitExceeded> {
        let credited = self.0 + amount.0;
        if credited > MAX_BALANCE {
            return Err(BalanceLimitExceeded { balance: self, amount });
        }
        Ok(Self(credited))
    }

    /// The exact value, with two decimals.
    pub fn as_decimal(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

/// A number in decimal notation, reduced to its significant digits: the value is `0.digits × 10^point`.
struct DecimalText {
    negative: bool,
    digits: String,
    point: i64,
}

impl DecimalText {
    /// Reads `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`; anything else is not a number.
    fn parse(text: &str) -> Option<Self> {
        let (negative, unsigned) = text.strip_prefix('-').map_or((false, text), |rest| (true, rest));
        let (mantissa, exponent) =
            unsigned.split_once(['e', 'E']).map_or((unsigned, None), |(mantissa, exponent)| (mantissa, Some(exponent)));
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(integer) || (mantissa.contains('.') && !all_digits(fraction)) {
            return None;
        }
        let exponent = exponent.map_or(Some(0), parse_exponent)?;
        let all = format!("{integer}{fraction}");
        let leading_zeros = all.len() - all.trim_start_matches('0').len();
        let digits = all[leading_zeros..].trim_end_matches('0').to_owned();
        let point = if digits.is_empty() {
            0
        } else {
            (i64::try_from(integer.len()).ok()? - i64::try_from(leading_zeros).ok()?).saturating_add(exponent)
        };
        Some(Self { negative, digits, point })
    }
}

fn parse_exponent(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Any exponent beyond a billion already makes a nonzero amount too large or too fine.
    let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX).min(1_000_000_000);
    Some(sign * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_limits_are_the_round_figures_they_are_named_for() {
        assert_eq!(MAX_AMOUNT.to_string(), "1000000000.00");
        assert_eq!(MAX_BALANCE.to_string(), "1000000000000.00");
        assert_eq!(Balance::ZERO.to_string(), "0.00");
    }

    #[test]
    fn a_stored_amount_is_checked_like_a_parsed_one() {
        let decimal = |text: &str| text.parse::<Decimal>().expect("a decimal");
        assert_eq!(Amount::from_decimal(decimal("12.5000")).map(|amount| amount.to_string()), Ok("12.50".to_owned()));
        assert_eq!(Amount::from_decimal(decimal("1000000000")), Amount::parse("1000000000"));
        assert_eq!(Amount::from_decimal(decimal("0")), Err(AmountError::NotPositive));
        assert_eq!(Amount::from_decimal(decimal("-1")), Err(AmountError::NotPositive));
        assert_eq!(Amount::from_decimal(decimal("0.001")), Err(AmountError::TooManyDecimals));
        assert_eq!(Amount::from_decimal(decimal("1000000000.01")), Err(AmountError::TooLarge));
    }

    const MAX_BALANCE_CENTS: i64 = 100_000_000_000_000;

    fn amount(text: &str) -> String {
        Amount::parse(text).map_or_else(|e| format!("error: {e}"), |a| a.to_string())
    }

    #[test]
    fn parses_whole_and_decimal_amounts_to_cents() {
        assert_eq!(amount("500"), "500.00");
        assert_eq!(amount("12.5"), "12.50");
        assert_eq!(amount("12.34"), "12.34");
        assert_eq!(amount("0.01"), "0.01");
        assert_eq!(amount("007.10"), "7.10");
        assert_eq!(amount("1.500"), "1.50");
        assert_eq!(amount("1000000000"), "1000000000.00");
        assert_eq!(amount("1000000000.00"), "1000000000.00");
    }

    #[test]
    fn parses_the_exponent_form_of_json_numbers() {
        assert_eq!(amount("1e3"), "1000.00");
        assert_eq!(amount("1.5E2"), "150.00");
        assert_eq!(amount("125e-2"), "1.25");
        assert_eq!(amount("1e+9"), "1000000000.00");
    }

    #[test]
    fn refuses_amounts_outside_the_rules() {
        assert_eq!(Amount::parse("0"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("0.00"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("-0"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("-5"), Err(AmountError::NotPositive));
        assert_eq!(Amount::parse("0.001"), Err(AmountError::TooManyDecimals));
        assert_eq!(Amount::parse("12.345"), Err(AmountError::TooManyDecimals));
        assert_eq!(Amount::parse("1e-3"), Err(AmountError::TooManyDecimals));
        assert_eq!(Amount::parse("1000000000.01"), Err(AmountError::TooLarge));
        assert_eq!(Amount::parse("1e10"), Err(AmountError::TooLarge));
        assert_eq!(Amount::parse("1e999999999999999999999"), Err(AmountError::TooLarge));
        assert_eq!(Amount::parse("99999999999999999999999999999999999999"), Err(AmountError::TooLarge));
    }

    #[test]
    fn refuses_text_that_is_not_decimal_notation() {
        for bad in ["", "abc", "1,5", "1_000", "+5", " 5", "5 ", ".5", "5.", "1e", "0x10", "NaN", "inf", "1.2.3", "--1"]
        {
            assert_eq!(Amount::parse(bad), Err(AmountError::NotANumber(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn credit_adds_exactly_and_stops_at_the_limit() {
        let cent = Amount::parse("0.01").expect("valid");
        let big = Amount::parse("1000000000").expect("valid");
        let mut balance = Balance::ZERO;
        for _ in 0..1000 {
            balance = balance.credit(big).expect("within the limit");
        }
        assert_eq!(balance.to_string(), "1000000000000.00");
        assert_eq!(balance.credit(cent), Err(BalanceLimitExceeded { balance, amount: cent }));
    }

    #[test]
    fn limits_are_the_documented_values() {
        assert_eq!(MAX_AMOUNT.to_string(), "1000000000.00");
        assert_eq!(MAX_BALANCE.to_string(), "1000000000000.00");
        assert_eq!(Balance::ZERO.to_string(), "0.00");
    }

    #[test]
    fn stored_balances_are_checked() {
        assert_eq!(Balance::from_decimal(Decimal::new(5, 0)).map(|b| b.to_string()), Ok("5.00".to_owned()));
        assert!(Balance::from_decimal(Decimal::new(-1, 2)).is_err());
        assert!(Balance::from_decimal(Decimal::new(1, 3)).is_err());
        assert!(Balance::from_decimal(MAX_BALANCE + Decimal::new(1, 2)).is_err());
    }

    proptest! {
        #[test]
        fn every_valid_cent_amount_round_trips(cents in 1_i64..=MAX_AMOUNT_CENTS) {
            let text = format!("{}.{:02}", cents / 100, cents % 100);
            let parsed = Amount::parse(&text).expect("valid amount");
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(parsed, Amount::from_cents(cents).expect("valid cents"));
        }

        #[test]
        fn credit_is_exact_addition(a in 0_i64..=MAX_BALANCE_CENTS, b in 1_i64..=MAX_AMOUNT_CENTS) {
            let balance = Balance::from_decimal(Decimal::new(a, 2)).expect("valid balance");
            let amount = Amount::from_cents(b).expect("valid amount");
            match balance.credit(amount) {
                Ok(after) => prop_assert_eq!(after.as_decimal(), Decimal::new(a + b, 2)),
                Err(_) => prop_assert!(a + b > MAX_BALANCE_CENTS),
            }
        }
    }
}
